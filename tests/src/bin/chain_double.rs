//! `chain-double`: the local subtensor double as its own process, for
//! end-to-end tests and local runs (`coordinator run --subtensor.network
//! ws://ADDR`). Prints `listening ws://ADDR` on stdout once bound.

use std::net::SocketAddr;

use clap::Parser;
use tests::LogArgs;
use tests::chain_double::{ChainDouble, DoubleConfig};

#[derive(Debug, Parser)]
#[command(about = "A local subtensor double speaking the Substrate JSON-RPC subset subxt uses")]
struct Args {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:9944")]
    listen: SocketAddr,
    /// Subnet the double holds
    #[arg(long, default_value_t = 11)]
    netuid: u16,
    /// Blocks made at start
    #[arg(long, default_value_t = 1_000)]
    start_block: u64,
    /// WeightsSetRateLimit in blocks
    #[arg(long, default_value_t = 100)]
    weights_rate_limit: u64,
    /// Subnet tempo in blocks
    #[arg(long, default_value_t = 360)]
    tempo: u16,
    /// Add a block every this many milliseconds (0: only on extrinsics and `double_advance`)
    #[arg(long, default_value_t = 0)]
    block_time_ms: u64,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.log.init();
    let double = ChainDouble::start(
        args.listen,
        DoubleConfig {
            netuid: args.netuid,
            start_block: args.start_block,
            weights_rate_limit: args.weights_rate_limit,
            tempo: args.tempo,
        },
    )
    .await?;
    println!("listening {}", double.url());
    tracing::info!(addr = %double.addr(), "chain double listening");
    let mut ticker = (args.block_time_ms > 0)
        .then(|| tokio::time::interval(std::time::Duration::from_millis(args.block_time_ms)));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = async { match ticker.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                double.advance(1);
            }
        }
    }
    Ok(())
}
