//! `coordinator run`: the production coordinator on RabbitMQ and Redis, on
//! subtensor or on a local chain read from a submissions file (see
//! [`crate::chain`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::config::CoordinatorConfig;
use crate::service::Coordinator;
use crate::view::SharedView;

/// Runs the coordinator on RabbitMQ and Redis until `shutdown`, on subtensor
/// or a local chain (see [`crate::chain::select`]).
pub async fn run(
    config: CoordinatorConfig,
    submissions: Option<&Path>,
    block_time: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (queue, store) = config.cluster.connect("coordinator", "coordinator run")?;
    let (queue, store) = (Arc::new(queue), Arc::new(store));
    let selected = crate::chain::select(&config, submissions, block_time, &shutdown).await?;
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
        tokio::spawn(api::serve_admin(
            listener,
            api_state.clone(),
            api_stop.clone(),
        ))
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
