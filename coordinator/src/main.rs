//! The coordinator binary: parses flags, sets up logging, and hands over to
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use common::config::process_env;
use common::options::ConfigArgs;
use common::telemetry::LogFormat;
use coordinator::config::CoordinatorOptions;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Validator coordinator of the roleplay-LLM evaluation cluster"
)]
struct Cli {
    /// Log format: human or json (json for Kubernetes)
    #[arg(long, global = true, env = "EVAL_LOG_FORMAT", default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the coordinator on RabbitMQ and Redis, on subtensor or with
    /// submissions from a local file (see `chain` in the library docs), until
    /// SIGTERM
    Run {
        #[command(flatten)]
        config: ConfigArgs<CoordinatorOptions>,
        /// TOML file of local submissions ([[miner]] hotkey, commit); used
        /// when no --subtensor.network is given
        #[arg(long, env = "EVAL_SUBMISSIONS")]
        submissions: Option<PathBuf>,
        /// Block time of the local chain
        #[arg(long, default_value = "12s", value_parser = humantime::parse_duration)]
        block_time: std::time::Duration,
    },
    /// Print the commit string a miner commits for a model, bound to its hotkey
    Commit {
        namespace: String,
        name: String,
        chat_template: String,
        hotkey: String,
    },
    /// Commit a model on chain (Commitments.set_commitment signed by the
    /// miner's hotkey) and print the block and the coordinator's status URL
    Submit(coordinator::submit::SubmitArgs),
    /// Print the effective configuration (file < environment < flags) and exit
    Config(ConfigArgs<CoordinatorOptions>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    common::options::run_main(cli.log_format, run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run {
            config,
            submissions,
            block_time,
        } => {
            let config = config.layered()?.validate(&process_env())?;
            coordinator::run::run(
                config,
                submissions.as_deref(),
                block_time,
                common::shutdown::on_signals(),
            )
            .await
        }
        Command::Submit(args) => {
            let dry_run = args.dry_run;
            let submitted = coordinator::submit::submit(args).await?;
            coordinator::submit::print_report(&submitted, dry_run)
                .context("writing the report to stdout")?;
            Ok(())
        }
        Command::Commit {
            namespace,
            name,
            chat_template,
            hotkey,
        } => {
            let commit = common::submission::CommitString::bound_to(
                namespace,
                name,
                chat_template,
                hotkey,
                None,
            );
            let text = commit.to_string();
            // Round-tripping applies the parser's checks: length, characters.
            common::submission::CommitString::parse(&text)?;
            println!("{text}");
            Ok(())
        }
        Command::Config(config) => {
            let config = config.layered()?.validate(&process_env())?;
            println!("{config:#?}");
            Ok(())
        }
    }
}
