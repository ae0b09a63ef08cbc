//! Load generator for the miner status route: N keep-alive HTTP/1.1
//! connections on loopback, each sending `GET /v1/models/{ns}/{name}?…`
//! back to back for a fixed time; prints requests/s and latency
//! percentiles (from every request's latency, sorted).
//!
//! By default it serves the real API router in process (its own 2-thread
//! runtime, on 127.0.0.1:0) over an in-memory store holding `--jobs` jobs in
//! every status, with the rate limit off (as `--api-rate-limit 0` sets it):
//! the figure is the route's, not the limiter's. `--addr HOST:PORT` measures
//! a running `coordinator run` instead (start it with `--api-rate-limit 0`,
//! or every request past the burst is a 429 and counts as an error).
//!
//! ```sh
//! cargo run -p tests --features common/rabbitmq,common/redis --bin api_bench -- --connections 64 --duration 10s
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use common::job::{JobMessage, JobOrigin, ModelRef};
use common::queue::MemoryQueue;
use common::result::{ComponentScores, Outcome, ResultMessage, ResultV1, Scores};
use common::store::{Lease, MemoryStore, ResultStore};
use coordinator::api::{self, ApiSettings, ApiState};
use coordinator::view::SharedView;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent keep-alive connections
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to send requests
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Warm-up before measuring
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Jobs in the in-process store (requests cycle over them)
    #[arg(long, default_value_t = 1_000)]
    jobs: usize,
    /// Worker threads of the load generator's runtime
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Worker threads of the in-process server's runtime
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Measure a running coordinator at this address instead
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// With --addr: the path and query to request
    #[arg(long)]
    path: Option<String>,
}

fn model(i: usize) -> ModelRef {
    ModelRef {
        namespace: "bench".into(),
        name: format!("model-{i}"),
        revision: "main".into(),
        chat_template: "chatml".into(),
    }
}

/// An in-memory store with `jobs` jobs: a quarter in each status.
async fn fill_store(jobs: usize) -> Result<Arc<MemoryStore>> {
    let store = Arc::new(MemoryStore::new());
    let now = common::clock::now_ms();
    for i in 0..jobs {
        let message = JobMessage::v1(
            model(i),
            "v1",
            JobOrigin::Operator {
                requested_by: "bench".into(),
            },
            now + i as u64,
        );
        let job = message.job();
        store.enqueue(job).await?;
        if i % 4 == 0 {
            continue;
        }
        let lease = Lease::new("bench-worker", now, Duration::from_secs(3600));
        store.claim(job, lease).await?;
        store.heartbeat(&job.job_id, lease, 0.5).await?;
        if i % 4 == 1 {
            continue;
        }
        let outcome = if i % 4 == 2 {
            Outcome::Completed(Scores {
                components: ComponentScores {
                    similarity: 0.5,
                    vibe: 0.5,
                    latency: 0.5,
                    size: 0.5,
                    judge: None,
                },
                total: 0.5,
                weights_fingerprint: format!("fp{i}"),
                dataset_sha256: String::new(),
                revision_sha: String::new(),
                tokens: 10_000,
                samples_context_cut: None,
                latency: None,
                samples: Vec::new(),
                judge: None,
            })
        } else {
            Outcome::Failed(common::result::FailureReason::new(
                common::result::FailureCode::TooLarge,
                "too large",
            ))
        };
        store
            .finish(&ResultMessage::V1(ResultV1 {
                job_id: job.job_id.clone(),
                profile: "v1".into(),
                outcome,
                worker: "bench-worker".into(),
                attempt: 1,
                started_at_ms: now,
                finished_at_ms: now + 60_000,
            }))
            .await?;
    }
    Ok(store)
}

/// Starts the API in its own runtime on a background thread.
fn start_server(args: &Args) -> Result<(SocketAddr, CancellationToken)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name("server")
        .enable_all()
        .build()?;
    let jobs = args.jobs;
    let stop = CancellationToken::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let server_stop = stop.clone();
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let setup = async {
                let store = fill_store(jobs).await?;
                let state = ApiState::new(
                    store,
                    Arc::new(MemoryQueue::new(3)),
                    SharedView::default(),
                    "v1",
                    false,
                    ApiSettings {
                        rate_limit: None,
                        ..ApiSettings::default()
                    },
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                anyhow::Ok((state, listener))
            };
            match setup.await {
                Ok((state, listener)) => {
                    let _ = tx.send(listener.local_addr().map_err(Into::into));
                    let _ = api::serve(listener, state, server_stop).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
    });
    let addr = rx.recv().context("server thread")??;
    Ok((addr, stop))
}

/// One connection's loop: returns its latencies (µs) and error count.
async fn connection(
    addr: SocketAddr,
    paths: Arc<Vec<String>>,
    offset: usize,
    warmup_until: Instant,
    until: Instant,
) -> Result<(Vec<u32>, u64)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let requests: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| {
            format!("GET {p} HTTP/1.1\r\nHost: bench\r\nUser-Agent: api_bench\r\n\r\n").into_bytes()
        })
        .collect();
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0u64;
    let mut i = offset;
    loop {
        let start = Instant::now();
        if start >= until {
            break;
        }
        stream.write_all(&requests[i % requests.len()]).await?;
        i += 1;
        // Read one response: headers, then Content-Length bytes.
        let (head_len, body_len, status) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end])?;
                let status: u16 = head.get(9..12).unwrap_or("0").parse().unwrap_or(0);
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .context("response without content-length")?;
                break (end + 4, length, status);
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("server closed the connection");
            }
        };
        while buf.len() < head_len + body_len {
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("server closed the connection mid-body");
            }
        }
        buf.drain(..head_len + body_len);
        if start >= warmup_until {
            latencies.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
            if status != 200 {
                errors += 1;
            }
        }
    }
    Ok((latencies, errors))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (addr, stop) = match args.addr {
        Some(addr) => (addr, None),
        None => {
            let (addr, stop) = start_server(&args)?;
            (addr, Some(stop))
        }
    };
    let paths: Vec<String> = match &args.path {
        Some(path) => vec![path.clone()],
        None => (0..args.jobs.max(1))
            .map(|i| format!("/v1/models/bench/model-{i}?chat_template=chatml&hotkey=5Bench{i}"))
            .collect(),
    };
    let paths = Arc::new(paths);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .enable_all()
        .build()?;
    let (latencies, errors, measured) = runtime.block_on(async {
        // The status index is built within a refresh interval of the start.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let start = Instant::now();
        let warmup_until = start + args.warmup;
        let until = warmup_until + args.duration;
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..args.connections {
            tasks.spawn(connection(addr, paths.clone(), c * 7, warmup_until, until));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        while let Some(joined) = tasks.join_next().await {
            let (latencies, e) = joined??;
            all.extend(latencies);
            errors += e;
        }
        anyhow::Ok((all, errors, args.duration))
    })?;
    if let Some(stop) = stop {
        stop.cancel();
    }
    let mut sorted = latencies;
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        bail!("no request completed");
    }
    let pct = |p: f64| sorted[((n as f64 * p).ceil() as usize).clamp(1, n) - 1] as f64 / 1000.0;
    println!(
        "{} requests in {:.1?} over {} connections ({} paths): {:.0} req/s, {} non-200",
        n,
        measured,
        args.connections,
        paths.len(),
        n as f64 / measured.as_secs_f64(),
        errors
    );
    println!(
        "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        *sorted.last().unwrap_or(&0) as f64 / 1000.0
    );
    Ok(())
}
