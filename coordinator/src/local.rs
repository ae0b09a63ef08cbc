//! `coordinator run`: the coordinator against RabbitMQ and Redis, with the
//! submissions read from a local file instead of the chain (for running the
//! cluster's parts separately before connecting a chain, and for tests).
//!
//! The file lists miners and their commit strings:
//!
//! ```toml
//! [[miner]]
//! hotkey = "5Alice"
//! commit = "alice:rp-7b:chatml:5Alice:1234567890:None"
//! ```
//!
//! A local chain starts at block 1000 and advances one block every
//! `block_time`; weights it is given are logged, not sent anywhere.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use common::chain::MemoryChain;
use common::queue::{RabbitConfig, RabbitQueue};
use common::store::{RedisConfig, RedisStore};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::config::CoordinatorConfig;
use crate::service::Coordinator;
use crate::view::SharedView;

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

/// Runs the coordinator on RabbitMQ and Redis until `shutdown`, on subtensor
/// or a local chain (see [`crate::chain::select`]).
pub async fn run(
    config: CoordinatorConfig,
    submissions: Option<&Path>,
    block_time: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let amqp_url = config
        .amqp_url
        .clone()
        .context("amqp_url (EVAL_AMQP_URL) is required by `coordinator run`")?;
    let redis_url = config
        .redis_url
        .clone()
        .context("redis_url (EVAL_REDIS_URL) is required by `coordinator run`")?;
    let selected = crate::chain::select(&config, submissions, block_time, &shutdown).await?;
    let queue = Arc::new(
        RabbitQueue::lazy(RabbitConfig::for_queue(
            amqp_url.expose(),
            &config.queue,
            "coordinator",
        ))
        .context("the RabbitMQ settings")?,
    );
    let store = Arc::new(
        RedisStore::lazy(RedisConfig::for_prefix(
            redis_url.expose().to_owned(),
            config.redis_prefix.clone(),
        ))
        .context("the Redis settings")?,
    );
    let view = SharedView::default();
    let api_state = ApiState::new(
        store.clone(),
        queue.clone(),
        view.clone(),
        &config.settings.profile_version,
        config.settings.dry_run,
        config.api.clone(),
    )
    .with_reconcile_settings(config.reconcile.clone());
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.api.listen))?;
    let admin_listener = match config.api.admin_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the admin port to {addr}"))?,
        ),
        None => None,
    };
    // Ordered shutdown: the loop stops first, then the API drains.
    let api_stop = CancellationToken::new();
    let admin = admin_listener.map(|listener| {
        tokio::spawn(api::serve_admin(listener, api_state.clone(), api_stop.clone()))
    });
    let api = tokio::spawn(api::serve(listener, api_state, api_stop.clone()));
    Coordinator::new(selected.chain, queue.clone(), store, config.settings, view)
        .with_reconcile_settings(config.reconcile)
        .run(shutdown)
        .await;
    if let Some(ticker) = selected.ticker {
        ticker.abort();
    }
    api_stop.cancel();
    api.await.context("HTTP API task")??;
    if let Some(admin) = admin {
        admin.await.context("admin port task")??;
    }
    queue.close().await;
    Ok(())
}
