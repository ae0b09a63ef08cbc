//! The local Hugging Face-compatible endpoint ([`tests::hub::HubServer`]) as
//! its own process, for end-to-end runs where every part is a separate OS
//! process. Prints its base URL on the first line of stdout (and logs it as
//! `hub listening`, field `url`), then serves until SIGTERM or SIGINT.
//! SIGUSR1 toggles an outage: every request answers 503 until the next
//! SIGUSR1 (logged as `hub outage toggled`, field `failing`).

use std::path::PathBuf;

use clap::Parser;
use tests::LogArgs;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(
    about = "Serve model and dataset repositories from a directory over the Hugging Face API"
)]
struct Args {
    /// Directory of repositories: <namespace>/<name>/ for models,
    /// datasets/<namespace>/<name>/ for datasets
    #[arg(long)]
    root: PathBuf,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.log.init();
    anyhow::ensure!(
        args.root.is_dir(),
        "{} is not a directory",
        args.root.display()
    );
    let server = tests::hub::HubServer::start(&args.root).await?;
    println!("{}", server.url);
    tracing::info!(url = %server.url, root = %args.root.display(), "hub listening");
    let shutdown = common::shutdown::on_signals();
    let mut toggles = signal(SignalKind::user_defined1())?;
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = toggles.recv() => {
                failing = !failing;
                server.fail_with(failing.then_some(503));
                tracing::info!(failing, "hub outage toggled");
            }
        }
    }
    drop(server);
    Ok(())
}
