//! The worker binary: parses flags, sets up logging, and hands over to the
//! library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::config::process_env;
use common::options::ConfigArgs;
use common::telemetry::LogFormat;
use worker::config::WorkerOptions;

#[derive(Debug, Parser)]
#[command(version, about = "GPU worker of the roleplay-LLM evaluation cluster")]
struct Cli {
    /// Log format: human or json (json for Kubernetes)
    #[arg(long, global = true, env = "EVAL_LOG_FORMAT", default_value = "human")]
    log_format: LogFormat,
    /// CPU threads of the engine's compute (RAYON_NUM_THREADS) [default: every
    /// core]. Pin it on a shared machine: latency is scored, and a thread count
    /// that follows the machine's load makes it noisy
    #[arg(long, global = true, env = "EVAL_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume jobs from RabbitMQ and store results in Redis until SIGTERM
    Run(ConfigArgs<WorkerOptions>),
    /// Score a local model directory with exactly the cluster's code
    Eval(worker::eval_cmd::EvalArgs),
    /// Write a generated tiny model (random weights, for tests and demos)
    MakeModel {
        /// Directory to write
        dir: PathBuf,
        /// Seed of the weights
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Print the effective configuration (file < environment < flags) and exit
    Config(ConfigArgs<WorkerOptions>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        // candle sizes its compute from RAYON_NUM_THREADS on every call.
        // SAFETY: no other thread exists yet (the runtime is built below),
        // so nothing reads the environment concurrently. The one place the
        // process environment is written: candle reads only the variable.
        #[allow(unsafe_code, clippy::disallowed_methods)]
        unsafe {
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        }
    }
    common::options::run_main(cli.log_format, run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(config) => {
            let config = config.layered()?.validate(&process_env())?;
            worker::run::run(config, common::shutdown::on_signals()).await
        }
        Command::Eval(args) => worker::eval_cmd::eval(args, common::shutdown::on_signals()).await,
        Command::MakeModel { dir, seed } => {
            let spec = worker::fixtures::TinyModelSpec {
                seed,
                ..Default::default()
            };
            tokio::task::spawn_blocking(move || worker::fixtures::write_tiny_model(&dir, &spec))
                .await??;
            Ok(())
        }
        Command::Config(config) => {
            let config = config.layered()?.validate(&process_env())?;
            println!("{config:#?}");
            Ok(())
        }
    }
}
