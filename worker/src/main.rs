//! The worker binary: parses flags, sets up logging, and hands over to the
//! library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::telemetry::{self, LogFormat};

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
    Run {
        /// TOML config file
        #[arg(long, env = "EVAL_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: worker::config::WorkerOptions,
    },
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
    Config {
        /// TOML config file
        #[arg(long, env = "EVAL_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: worker::config::WorkerOptions,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        // candle sizes its compute from RAYON_NUM_THREADS on every call.
        // SAFETY: no other thread exists yet (the runtime is built below),
        // so nothing reads the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        }
    }
    telemetry::init(
        cli.log_format,
        "info,mistralrs_core=warn,mistralrs=warn,candle_core=warn",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { config, options } => {
            let config = options.with_file(config.as_deref())?.validate()?;
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
        Command::Config { config, options } => {
            let config = options.with_file(config.as_deref())?.validate()?;
            println!("{config:#?}");
            Ok(())
        }
    }
}
