//! The local Hugging Face-compatible endpoint ([`tests::hub::HubServer`]) as
//! its own process, for end-to-end runs where every part is a separate OS
//! process. Prints its base URL on the first line of stdout, then serves
//! until SIGTERM or SIGINT.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    about = "Serve model and dataset repositories from a directory over the Hugging Face API"
)]
struct Args {
    /// Directory of repositories: <namespace>/<name>/ for models,
    /// datasets/<namespace>/<name>/ for datasets
    #[arg(long)]
    root: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.root.is_dir(),
        "{} is not a directory",
        args.root.display()
    );
    let server = tests::hub::HubServer::start(&args.root).await?;
    println!("{}", server.url);
    common::shutdown::on_signals().cancelled().await;
    drop(server);
    Ok(())
}
