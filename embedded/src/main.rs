//! The `embedded` binary: the whole validator in one process (README's first
//! command). Parses flags, sets up logging, and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use common::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Run the whole validator in this process (in-memory chain, queue and store; \
             generated tiny models) and print the leaderboard and weights"
)]
struct Cli {
    /// Log format: human or json
    #[arg(long, env = "EVAL_LOG_FORMAT", default_value = "human")]
    log_format: LogFormat,
    #[command(flatten)]
    options: embedded::EmbeddedOptions,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    common::options::run_main(cli.log_format, run(cli.options))
}

async fn run(options: embedded::EmbeddedOptions) -> anyhow::Result<()> {
    let shutdown = common::shutdown::on_signals();
    let report = embedded::run_with_engine(&options, shutdown.clone()).await?;
    print!("{}", embedded::render(&report));
    if let Some(api) = report.api {
        println!(
            "\nLeaderboard page at http://{}/ (Ctrl-C to stop)",
            api.addr
        );
        shutdown.cancelled().await;
        api.stop().await?;
    }
    Ok(())
}
