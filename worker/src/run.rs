//! `worker run`: the worker as deployed, consuming from RabbitMQ and writing
//! to Redis until SIGTERM, then handing its in-flight job back.
//!
//! It serves, on [`WorkerConfig::metrics_listen`] (bound before anything
//! else, and kept up until the in-flight job is handed back):
//! - `/metrics`: the Prometheus text format; every metric is registered at
//!   start with its known labels ([`metrics::init`]).
//! - `/healthz`: 200 while the process runs (the liveness probe).
//! - `/readyz`: 200 once connected, while RabbitMQ answers a passive declare
//!   of the job queue and Redis answers a read, each within
//!   [`READY_CHECK_TIMEOUT`]; else 503 naming what is missing.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use common::job::{JobId, ModelRef};
use common::queue::{JobQueue, RabbitQueue};
use common::store::{ClusterClock, RedisStore, ResultStore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::WorkerConfig;
use crate::consumer::Worker;
use crate::engine::judge::JudgeSlot;
use crate::engine::{EngineOptions, MistralEvaluator};
use crate::source::{HubSource, LocalDirSource, ModelSource, fetch_dataset};
use crate::{gpu, metrics};

/// Connects to the cluster and consumes jobs until `shutdown`.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    metrics::init();
    let connections = Arc::new(OnceLock::new());
    let listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding the metrics endpoint on {}", config.metrics_listen))?;
    let stop_serving = CancellationToken::new();
    let _stop_serving = stop_serving.clone().drop_guard();
    let bound = serve_metrics(listener, connections.clone(), stop_serving)?;
    info!(addr = %bound, "metrics listening");
    let (queue, store) = config.cluster.connect(config.name.clone(), "worker run")?;
    let (queue, store) = (Arc::new(queue), Arc::new(store));
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
    let dataset = fetch_dataset(&config.dataset, &config.hub, None).await?;
    let gpus = log_gpus();
    // A CUDA worker without a usable GPU would hand back every job it takes.
    anyhow::ensure!(
        gpus.is_some() || !cfg!(feature = "cuda"),
        "this worker is built for CUDA but finds no usable GPU: check the NVIDIA driver \
         (libcuda.so.1) and that the pod was given a GPU"
    );
    if gpus.is_some() {
        tokio::spawn(refresh_gpu_gauges(shutdown.clone()));
    }
    let dataset_sha256 = dataset.sha256.clone();
    if config.generation_batch > 1 && !cfg!(feature = "cuda") {
        warn!(
            generation_batch = config.generation_batch,
            "batched generation on the CPU: mistral.rs 0.8.1 returns wrong continuations there"
        );
    }
    let mut evaluator =
        MistralEvaluator::with_options(dataset, EngineOptions::batched(config.generation_batch));
    if let Some(settings) = &config.profile.judge {
        let slot = JudgeSlot::new(
            settings.clone(),
            source.clone(),
            config.profile.max_model_bytes,
        );
        // Loaded before any job is taken: a judge that does not fit beside the candidate is
        // a configuration error, refused here. One that cannot be fetched or loaded now is
        // tried again before each job, which is handed back meanwhile.
        match slot.ready(settings).await {
            Ok(judge) => {
                let judge_bytes = judge.model().shape.estimated_bytes;
                let device_bytes = gpus.as_ref().and_then(|g| g.first()).map(|g| g.total_bytes);
                judge_fits(
                    judge_bytes,
                    config.config_limits.memory_budget_bytes,
                    device_bytes,
                )
                .with_context(|| format!("the judge {}@{}", settings.repo, settings.revision))?;
                info!(
                    judge = %settings.repo,
                    judge_bytes,
                    candidate_budget_bytes = config.config_limits.memory_budget_bytes,
                    "judge ready; kept loaded between jobs"
                );
            }
            Err(error) => warn!(
                judge = %settings.repo,
                %error,
                "the judge is not ready; each job tries again first and is handed back meanwhile"
            ),
        }
        evaluator = evaluator.with_judge(slot);
    }
    info!(
        worker = %config.name,
        dataset = %config.dataset,
        dataset_sha256 = %dataset_sha256,
        device = ?config.config_limits.device,
        memory_budget_bytes = config.config_limits.memory_budget_bytes,
        "connecting"
    );
    let _ = connections.set(Connections {
        queue: queue.clone(),
        store: store.clone(),
    });
    let worker = Worker {
        name: config.name,
        queue: queue.clone(),
        store,
        source,
        evaluator: Arc::new(evaluator),
        profile: config.profile,
        timings: config.timings,
        clock: ClusterClock::default(),
    };
    worker.run(shutdown).await;
    queue.close().await;
    Ok(())
}

/// What `/readyz` checks, once connected.
#[derive(Debug)]
struct Connections {
    queue: Arc<RabbitQueue>,
    store: Arc<RedisStore>,
}

/// How long `/readyz` waits for each of RabbitMQ and Redis.
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `stop`;
/// returns the bound address.
fn serve_metrics(
    listener: tokio::net::TcpListener,
    connections: Arc<OnceLock<Connections>>,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    metrics::render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(connections);
    tokio::spawn(async move {
        let server = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(error) = server.await {
            warn!(%error, "metrics endpoint failed");
        }
    });
    Ok(bound)
}

async fn readyz(State(connections): State<Arc<OnceLock<Connections>>>) -> impl IntoResponse {
    let Some(c) = connections.get() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "connecting\n".to_owned());
    };
    let mut missing = Vec::new();
    match tokio::time::timeout(READY_CHECK_TIMEOUT, c.queue.depth()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => missing.push(format!("rabbitmq: {e}")),
        Err(_) => missing.push("rabbitmq: no answer".to_owned()),
    }
    match tokio::time::timeout(READY_CHECK_TIMEOUT, c.store.get(&probe_job_id())).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => missing.push(format!("redis: {e}")),
        Err(_) => missing.push("redis: no answer".to_owned()),
    }
    if missing.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", missing.join("; ")),
        )
    }
}

/// A job id no real job has, read by `/readyz` to see Redis answer.
fn probe_job_id() -> JobId {
    static ID: OnceLock<JobId> = OnceLock::new();
    ID.get_or_init(|| {
        let probe = ModelRef {
            namespace: "readyz".into(),
            name: "probe".into(),
            revision: "none".into(),
            chat_template: "none".into(),
        };
        JobId::for_model(&probe, "readyz")
    })
    .clone()
}

/// How often the GPU memory gauges are read again.
const GPU_GAUGE_INTERVAL: Duration = Duration::from_secs(30);

/// Whether a judge of `judge_bytes` fits on the device beside a candidate of
/// up to `candidate_budget` bytes. `device_bytes` is the GPU's memory; on the
/// CPU (`None`) host memory is the operator's to size.
fn judge_fits(
    judge_bytes: u64,
    candidate_budget: u64,
    device_bytes: Option<u64>,
) -> anyhow::Result<()> {
    let Some(device) = device_bytes else {
        return Ok(());
    };
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    anyhow::ensure!(
        judge_bytes.saturating_add(candidate_budget) <= device,
        "needs about {:.1} GiB beside the candidate's memory budget of {:.1} GiB, \
         {:.1} GiB in all, and the GPU has {:.1} GiB: lower the memory budget \
         (EVAL_MEMORY_BUDGET_GIB) or choose a smaller judge",
        gib(judge_bytes),
        gib(candidate_budget),
        gib(judge_bytes.saturating_add(candidate_budget)),
        gib(device)
    );
    Ok(())
}

/// Logs the host's GPUs once at start and sets the memory gauges; returns
/// them, if any. The driver query is blocking but quick, and runs before any
/// job.
fn log_gpus() -> Option<Vec<gpu::GpuInfo>> {
    match gpu::gpus() {
        None => {
            info!(
                cuda_build = cfg!(feature = "cuda"),
                "no CUDA GPU found; the engine runs on the CPU"
            );
            None
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
            Some(list)
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

#[cfg(test)]
mod tests {
    use super::judge_fits;

    #[test]
    fn a_judge_must_fit_beside_the_candidate_budget_on_the_gpu() {
        const GIB: u64 = 1 << 30;
        judge_fits(15 * GIB, 60 * GIB, Some(80 * GIB)).unwrap();
        let refused = judge_fits(15 * GIB, 70 * GIB, Some(80 * GIB)).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("85.0 GiB in all, and the GPU has 80.0 GiB"),
            "{refused}"
        );
        // On the CPU, host memory is the operator's to size.
        judge_fits(15 * GIB, 70 * GIB, None).unwrap();
    }
}
