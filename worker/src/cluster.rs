//! `worker run`: the worker as deployed, consuming from RabbitMQ and writing
//! to Redis until SIGTERM, then handing its in-flight job back.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use common::queue::{RabbitConfig, RabbitQueue};
use common::store::{RedisConfig, RedisStore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::WorkerConfig;
use crate::consumer::Worker;
use crate::engine::MistralEvaluator;
use crate::eval::dataset::Dataset;
use crate::source::{HubSource, LocalDirSource, ModelSource};
use crate::{gpu, metrics};

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
    let limits = config.config_limits.clone();
    let source: Arc<dyn ModelSource> = match &config.models_dir {
        Some(dir) => {
            info!(models_dir = %dir.display(), "models from a local directory");
            Arc::new(LocalDirSource::with_limits(dir, limits))
        }
        None => {
            info!(
                endpoint = %config.hub.endpoint,
                cache_dir = %config.hub.cache_dir.display(),
                token = config.hub.token.is_some(),
                "models from the Hugging Face hub"
            );
            Arc::new(HubSource::new(config.hub.clone(), limits).context("building the hub client")?)
        }
    };
    let dataset = Dataset::fetch(&config.dataset, &config.hub, None).await?;
    if log_gpus() {
        tokio::spawn(refresh_gpu_gauges(shutdown.clone()));
    }
    info!(
        worker = %config.name,
        dataset = %config.dataset,
        dataset_sha256 = %dataset.sha256,
        device = ?config.config_limits.device,
        memory_budget_bytes = config.config_limits.memory_budget_bytes,
        "connecting"
    );
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
        RedisStore::connect(RedisConfig::for_prefix(
            redis_url.expose().to_owned(),
            config.redis_prefix.clone(),
        ))
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

/// How often the GPU memory gauges are read again.
const GPU_GAUGE_INTERVAL: Duration = Duration::from_secs(30);

/// Logs the host's GPUs once at start and sets the memory gauges; says whether
/// there are any. The driver query is blocking but quick, and runs before any job.
fn log_gpus() -> bool {
    match gpu::gpus() {
        None => {
            info!(
                cuda_build = cfg!(feature = "cuda"),
                "no CUDA GPU found; the engine runs on the CPU"
            );
            false
        }
        Some(list) => {
            for g in &list {
                info!(
                    gpu = g.index,
                    name = %g.name,
                    total_bytes = g.total_bytes,
                    free_bytes = g.free_bytes,
                    cuda_build = cfg!(feature = "cuda"),
                    "gpu found"
                );
            }
            metrics::record_gpus(&list);
            true
        }
    }
}

/// Keeps the GPU memory gauges current until `shutdown`.
async fn refresh_gpu_gauges(shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(GPU_GAUGE_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match tokio::task::spawn_blocking(gpu::gpus).await {
            Ok(Some(list)) => metrics::record_gpus(&list),
            Ok(None) => {}
            Err(error) => warn!(%error, "gpu gauge refresh failed"),
        }
    }
}
