//! Which chain `coordinator run` talks to: subtensor through the subxt client
//! when `subtensor_network` is set, otherwise a local in-memory chain holding
//! the miners of a `--submissions` file (advancing one block per `block_time`;
//! weights it is given are logged, not sent anywhere). The file lists miners
//! and their commit strings:
//!
//! ```toml
//! [[miner]]
//! hotkey = "5Alice"
//! commit = "alice:rp-7b:chatml:5Alice:1234567890:None"
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use common::chain::subtensor::{Hotkey, SubtensorChain, SubtensorOptions};
use common::chain::{Chain, MemoryChain};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::CoordinatorConfig;
use crate::metrics;

/// The chain in use, and the task advancing a local chain's blocks.
pub struct SelectedChain {
    pub chain: Arc<dyn Chain>,
    pub ticker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SelectedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectedChain")
            .field("local", &self.ticker.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds the chain `config` names; `submissions` is the local chain's file.
pub async fn select(
    config: &CoordinatorConfig,
    submissions: Option<&Path>,
    block_time: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<SelectedChain> {
    metrics::init_chain_metrics();
    if let Some(url) = &config.chain.subtensor_url {
        let hotkey = config
            .chain
            .hotkey_file
            .as_deref()
            .map(Hotkey::from_file)
            .transpose()
            .context("loading the validator hotkey")?;
        let mut options =
            SubtensorOptions::new(url, config.netuid, Some(config.chain.state_dir.clone()));
        options.reconnects = Some(metrics::CHAIN_RECONNECTS.clone());
        let chain = SubtensorChain::new(options, hotkey).context("opening the chain client")?;
        let block = chain
            .check_connection()
            .await
            .with_context(|| format!("connecting to subtensor at {url}"))?;
        info!(url = %url, netuid = config.netuid, block, hotkey = ?chain.hotkey().map(Hotkey::ss58), state_dir = %config.chain.state_dir.display(), "connected to subtensor");
        return Ok(SelectedChain {
            chain: Arc::new(chain),
            ticker: None,
        });
    }
    let submissions = submissions.context(
        "no chain: give --subtensor.network (EVAL_SUBTENSOR_NETWORK) or --submissions FILE",
    )?;
    let chain = Arc::new(local_chain(submissions)?);
    let ticker = {
        let (chain, stop) = (chain.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(block_time);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => { chain.advance(1); }
                }
            }
        })
    };
    info!(netuid = config.netuid, submissions = %submissions.display(), "coordinator running on a local chain");
    let chain: Arc<MemoryChain> = chain;
    Ok(SelectedChain {
        chain,
        ticker: Some(ticker),
    })
}

/// The validator's hotkey on a local chain.
pub const LOCAL_VALIDATOR: &str = "5LocalValidator";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmissionsFile {
    #[serde(default)]
    miner: Vec<LocalMiner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalMiner {
    hotkey: String,
    commit: String,
}

/// A local chain holding the submissions of `path`.
pub fn local_chain(path: &Path) -> anyhow::Result<MemoryChain> {
    let file: SubmissionsFile = common::config::load_toml(path)?;
    let chain = MemoryChain::new(1_000, LOCAL_VALIDATOR, 1);
    chain.register(LOCAL_VALIDATOR, true);
    for miner in &file.miner {
        chain.register(&miner.hotkey, false);
        chain
            .commit(&miner.hotkey, miner.commit.as_bytes())
            .with_context(|| format!("miner {}", miner.hotkey))?;
        chain.advance(1);
    }
    Ok(chain)
}
