//! `worker run`: the worker as deployed, consuming from RabbitMQ and writing
//! to Redis until SIGTERM, then handing its in-flight job back.

use std::sync::Arc;

use anyhow::Context;
use common::queue::{RabbitConfig, RabbitQueue};
use common::store::{RedisConfig, RedisStore};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::WorkerConfig;
use crate::consumer::Worker;
use crate::engine::MistralEvaluator;
use crate::eval::dataset::Dataset;
use crate::source::{HubSource, LocalDirSource, ModelSource};

/// Connects to the cluster and consumes jobs until `shutdown`.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let amqp_url = config
        .amqp_url
        .clone()
        .context("amqp_url (EVAL_AMQP_URL) is required by `worker run`")?;
    let redis_url = config
        .redis_url
        .clone()
        .context("redis_url (EVAL_REDIS_URL) is required by `worker run`")?;
    let source: Arc<dyn ModelSource> = match &config.models_dir {
        Some(dir) => {
            info!(models_dir = %dir.display(), "models from a local directory");
            Arc::new(LocalDirSource::new(dir))
        }
        None => {
            info!(
                endpoint = %config.hub.endpoint,
                cache_dir = %config.hub.cache_dir.display(),
                token = config.hub.token.is_some(),
                "models from the Hugging Face hub"
            );
            Arc::new(HubSource::new(config.hub.clone()).context("building the hub client")?)
        }
    };
    let dataset = match &config.dataset {
        Some(path) => Dataset::load(path)?,
        None => Dataset::builtin(),
    };
    info!(worker = %config.name, dataset_sha256 = %dataset.sha256, "connecting");
    let queue = Arc::new(
        RabbitQueue::connect(RabbitConfig::for_queue(
            amqp_url.expose(),
            &config.queue,
            config.name.clone(),
        ))
        .await
        .context("connecting to RabbitMQ")?,
    );
    let store = Arc::new(
        RedisStore::connect(RedisConfig {
            url: redis_url.expose().to_owned(),
            prefix: config.redis_prefix.clone(),
            ..RedisConfig::default()
        })
        .await
        .context("connecting to Redis")?,
    );
    let worker = Worker {
        name: config.name,
        queue: queue.clone(),
        store,
        source,
        evaluator: Arc::new(MistralEvaluator::new(dataset)),
        profile: config.profile,
        timings: config.timings,
    };
    worker.run(shutdown).await;
    queue.close().await;
    Ok(())
}
