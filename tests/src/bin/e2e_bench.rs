//! Time from a submission appearing on chain to its score being visible to
//! the miner, on the whole cluster as OS processes ([`tests::cluster`]):
//! `--miners` commitments are written to the chain double at once, and each
//! miner's status route is polled every 50 ms until it answers COMPLETED.
//! Prints each miner's latency and the median and maximum.
//!
//! Needs the workspace binaries (`cargo build --workspace`) and the local
//! RabbitMQ and Redis.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use tests::cluster::{Cluster, ClusterSettings};

#[derive(Debug, Parser)]
#[command(about = "Submission-to-score latency of the whole cluster")]
struct Args {
    /// Miners committing at once
    #[arg(long, default_value_t = 4)]
    miners: u8,
    /// Worker processes
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Conversations scored per model
    #[arg(long, default_value_t = 12)]
    samples: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cluster = Cluster::start(
        "e2e-bench",
        ClusterSettings {
            workers: args.workers,
            samples: args.samples,
            ..ClusterSettings::default()
        },
    )
    .await?;
    for worker in &cluster.workers {
        worker.wait_consuming().await?;
    }
    let mut miners = Vec::new();
    for i in 0..args.miners {
        let started = Instant::now();
        miners.push((
            cluster.honest_miner(&format!("bench{i}"), 60 + i).await?,
            started,
        ));
    }
    let mut latencies = Vec::new();
    for (miner, started) in &miners {
        let path = miner.status_path();
        loop {
            let answer = cluster.get(&path).await?;
            if answer.status == 200 && answer.json()?["status"] == "COMPLETED" {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "{} not scored after 10 minutes: {}",
                miner.model.name,
                answer.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let latency = started.elapsed();
        println!("{}: {:.2} s", miner.model.name, latency.as_secs_f64());
        latencies.push(latency);
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = *latencies.last().context("no miners")?;
    println!(
        "miners {} workers {} samples {}: submission to visible score median {:.2} s, max {:.2} s",
        args.miners,
        args.workers,
        args.samples,
        median.as_secs_f64(),
        max.as_secs_f64()
    );
    cluster.shutdown().await
}
