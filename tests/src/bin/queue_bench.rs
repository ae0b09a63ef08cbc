//! End-to-end queue overhead: jobs/s through publish → RabbitMQ → worker
//! (no-op evaluator) → Redis → aggregate, with in-process workers that each
//! have their own RabbitMQ connection and Redis connection.
//!
//! ```text
//! cargo run -p tests --bin queue_bench -- --jobs 2000 --workers 1,4
//! ```
//!
//! Each round uses a fresh queue and key prefix (deleted afterwards). It
//! enqueues and publishes every job concurrently (each publish awaits its
//! publisher confirm), waits until every job is COMPLETED in Redis (counted
//! as the workers' `finish` calls return `Recorded`), then reads the
//! leaderboard. The store calls the workers make are timed, to show how much
//! of a job's wall time is Redis round trips.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use async_trait::async_trait;
use clap::Parser;
use common::job::{JobId, JobMessage, JobOrigin, JobStatus, JobV1, ModelRef};
use common::queue::{
    DeadLetter, Delivery, JobQueue, QueueDepth, QueueError, RabbitConfig, RabbitQueue,
};
use common::result::{ResultMessage, SampleRecord};
use common::scoring::ScoringProfile;
use common::store::{
    Claim, ClusterClock, Enqueued, Finish, JobRecord, Lease, PublishCheck, PublishOutcome,
    RankedJob, RedisStore, ResultStore, StoreError,
};
use futures::{StreamExt, TryStreamExt};
use tests::sandbox::Sandbox;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;
use worker::consumer::{LoopTimings, Worker};
use worker::error::JobError;
use worker::eval::{EvalTask, Evaluation, Evaluator};
use worker::source::{LocalModel, ModelShape, ModelSource};

#[derive(Debug, Parser)]
#[command(about = "Jobs/s through RabbitMQ, a no-op worker and Redis")]
struct Args {
    /// Jobs per round
    #[arg(long, default_value_t = 2000)]
    jobs: usize,
    /// Worker counts, one round each
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    workers: Vec<usize>,
    /// Unacknowledged deliveries per worker (the cluster uses 1)
    #[arg(long, default_value_t = 1)]
    prefetch: u16,
    /// Publishes (enqueue + publish with confirm) in flight at once
    #[arg(long, default_value_t = 256)]
    publish_concurrency: usize,
    /// Give up on a round after this long
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Returns a fixed model without touching the disk.
#[derive(Debug)]
struct FixedSource;

#[async_trait]
impl ModelSource for FixedSource {
    async fn fetch(&self, _model: &ModelRef, _max_bytes: u64) -> Result<LocalModel, JobError> {
        Ok(LocalModel {
            dir: PathBuf::from("/nonexistent/bench-model"),
            revision_sha: "0".repeat(40),
            size_bytes: 1,
            weights_fingerprint: "0".repeat(64),
            shape: ModelShape::default(),
        })
    }
}

/// Scores every model the same, at once.
#[derive(Debug)]
struct NoopEvaluator;

#[async_trait]
impl Evaluator for NoopEvaluator {
    async fn evaluate(&self, _task: EvalTask<'_>) -> Result<Evaluation, JobError> {
        Ok(tests::uniform_evaluation(0.5, 0, "0".repeat(64)))
    }
}

/// Time spent in one kind of store call, summed over every worker.
#[derive(Debug, Default)]
struct CallTimer {
    calls: AtomicU64,
    micros: AtomicU64,
}

impl CallTimer {
    async fn time<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        out
    }

    fn summary(&self) -> String {
        let calls = self.calls.load(Ordering::Relaxed);
        let micros = self.micros.load(Ordering::Relaxed);
        let mean = if calls == 0 {
            0.0
        } else {
            micros as f64 / calls as f64 / 1000.0
        };
        format!("{calls} calls, mean {mean:.2} ms")
    }
}

/// What the workers' queue and store calls cost, and how many results were
/// recorded.
#[derive(Debug, Default)]
struct StoreStats {
    recorded: AtomicU64,
    done: Notify,
    /// Waiting in `next_delivery` (with prefetch 1: from the previous ack
    /// until the broker sends the next message).
    next_delivery: CallTimer,
    claim: CallTimer,
    heartbeat: CallTimer,
    finish: CallTimer,
}

/// Times a worker's waits for deliveries.
#[derive(Debug)]
struct TimedQueue {
    inner: Arc<RabbitQueue>,
    stats: Arc<StoreStats>,
}

#[async_trait]
impl JobQueue for TimedQueue {
    async fn publish(&self, job: &JobMessage) -> Result<(), QueueError> {
        self.inner.publish(job).await
    }

    async fn next_delivery(&self) -> Result<Delivery, QueueError> {
        self.stats
            .next_delivery
            .time(self.inner.next_delivery())
            .await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.inner.depth().await
    }

    async fn next_dead_letter(&self) -> Result<Option<DeadLetter>, QueueError> {
        self.inner.next_dead_letter().await
    }
}

/// A [`ResultStore`] that counts recorded results and times the calls a
/// worker makes, around a real [`RedisStore`].
#[derive(Debug)]
struct CountingStore {
    inner: RedisStore,
    stats: Arc<StoreStats>,
}

#[async_trait]
impl ResultStore for CountingStore {
    async fn enqueue(&self, job: &JobV1) -> Result<Enqueued, StoreError> {
        self.inner.enqueue(job).await
    }

    async fn time_ms(&self) -> Result<u64, StoreError> {
        self.inner.time_ms().await
    }

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.inner.get(id).await
    }

    async fn claim(&self, job: &JobV1, lease: Lease<'_>) -> Result<Claim, StoreError> {
        self.stats.claim.time(self.inner.claim(job, lease)).await
    }

    async fn heartbeat(
        &self,
        id: &JobId,
        lease: Lease<'_>,
        progress: f64,
    ) -> Result<bool, StoreError> {
        let renewal = self.inner.heartbeat(id, lease, progress);
        self.stats.heartbeat.time(renewal).await
    }

    async fn release(&self, id: &JobId, worker: &str) -> Result<(), StoreError> {
        self.inner.release(id, worker).await
    }

    async fn finish(&self, result: &ResultMessage) -> Result<Finish, StoreError> {
        let finished = self.stats.finish.time(self.inner.finish(result)).await;
        if let Ok(Finish::Recorded) = finished {
            self.stats.recorded.fetch_add(1, Ordering::Relaxed);
            self.stats.done.notify_one();
        }
        finished
    }

    async fn samples(&self, id: &JobId) -> Result<Vec<SampleRecord>, StoreError> {
        self.inner.samples(id).await
    }

    async fn begin_publish(
        &self,
        id: &JobId,
        check: PublishCheck,
    ) -> Result<Option<u32>, StoreError> {
        self.inner.begin_publish(id, check).await
    }

    async fn end_publish(
        &self,
        id: &JobId,
        attempt: u32,
        outcome: PublishOutcome,
    ) -> Result<(), StoreError> {
        self.inner.end_publish(id, attempt, outcome).await
    }

    async fn reclaim(
        &self,
        id: &JobId,
        lease_expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.inner.reclaim(id, lease_expires_at_ms, now_ms).await
    }

    async fn requeue(&self, id: &JobId, published_at_ms: u64) -> Result<bool, StoreError> {
        self.inner.requeue(id, published_at_ms).await
    }

    async fn requeue_lost(&self, id: &JobId, published_at_ms: u64) -> Result<bool, StoreError> {
        self.inner.requeue_lost(id, published_at_ms).await
    }

    async fn jobs_of_hotkey(&self, hotkey: &str) -> Result<Vec<JobRecord>, StoreError> {
        self.inner.jobs_of_hotkey(hotkey).await
    }

    async fn jobs_with_status(&self, status: JobStatus) -> Result<Vec<JobRecord>, StoreError> {
        self.inner.jobs_with_status(status).await
    }

    async fn leaderboard(&self, limit: usize) -> Result<Vec<RankedJob>, StoreError> {
        self.inner.leaderboard(limit).await
    }
}

/// The numbers of one round.
#[derive(Debug)]
struct Round {
    workers: usize,
    jobs: usize,
    published: Duration,
    completed: Duration,
    aggregated: Duration,
    stats: Arc<StoreStats>,
}

impl Round {
    fn print(&self) {
        let rate = |d: Duration| self.jobs as f64 / d.as_secs_f64();
        println!(
            "workers={} jobs={}: publish {:.0} jobs/s ({:.2?}); end to end {:.0} jobs/s \
             ({:.2?} to all COMPLETED); aggregate {:.2?}; total {:.0} jobs/s",
            self.workers,
            self.jobs,
            rate(self.published),
            self.published,
            rate(self.completed),
            self.completed,
            self.aggregated,
            rate(self.completed + self.aggregated),
        );
        println!(
            "  calls by workers: next_delivery {}; claim {}; heartbeat {}; finish {}",
            self.stats.next_delivery.summary(),
            self.stats.claim.summary(),
            self.stats.heartbeat.summary(),
            self.stats.finish.summary(),
        );
    }
}

async fn round(args: &Args, workers: usize) -> Result<Round> {
    let sandbox = Sandbox::new("bench").await?;
    let stats = Arc::new(StoreStats::default());
    let shutdown = CancellationToken::new();
    let mut queues = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..workers {
        let queue = Arc::new(
            RabbitQueue::connect(RabbitConfig {
                prefetch: args.prefetch,
                consumer_tag: format!("bench-{i}"),
                ..sandbox.rabbit.clone()
            })
            .await?,
        );
        let store = Arc::new(CountingStore {
            inner: RedisStore::connect(sandbox.redis.clone()).await?,
            stats: stats.clone(),
        });
        let worker = Worker {
            name: format!("bench-{i}"),
            queue: Arc::new(TimedQueue {
                inner: queue.clone(),
                stats: stats.clone(),
            }),
            store,
            source: Arc::new(FixedSource),
            evaluator: Arc::new(NoopEvaluator),
            profile: ScoringProfile::v1(),
            timings: LoopTimings::default(),
            clock: ClusterClock::default(),
        };
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move { worker.run(shutdown).await }));
        queues.push(queue);
    }

    let messages: Vec<JobMessage> = (0..args.jobs)
        .map(|i| {
            JobMessage::v1(
                ModelRef {
                    namespace: "bench".into(),
                    name: format!("m{i}"),
                    revision: "main".into(),
                    chat_template: "chatml".into(),
                },
                "v1",
                JobOrigin::Operator {
                    requested_by: "queue_bench".into(),
                },
                common::clock::now_ms(),
            )
        })
        .collect();

    let started = Instant::now();
    futures::stream::iter(messages.iter().map(|message| {
        let sandbox = &sandbox;
        async move {
            sandbox.store.enqueue(message.job()).await?;
            sandbox.queue.publish(message).await?;
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(args.publish_concurrency)
    .try_collect::<()>()
    .await?;
    let published = started.elapsed();

    let deadline = started + args.timeout;
    while stats.recorded.load(Ordering::Relaxed) < args.jobs as u64 {
        // `notify_one` keeps a permit, so a result recorded between the load
        // and this wait is not missed; the timeout bounds a lost round.
        let remaining = deadline.saturating_duration_since(Instant::now());
        ensure!(
            tokio::time::timeout(remaining, stats.done.notified())
                .await
                .is_ok(),
            "only {} of {} jobs completed within {:?}",
            stats.recorded.load(Ordering::Relaxed),
            args.jobs,
            args.timeout
        );
    }
    let completed = started.elapsed();
    let board = sandbox.store.leaderboard(args.jobs).await?;
    let aggregated = started.elapsed() - completed;
    ensure!(
        board.len() == args.jobs,
        "leaderboard has {} of {} jobs",
        board.len(),
        args.jobs
    );

    shutdown.cancel();
    for task in tasks {
        task.await.context("worker task")?;
    }
    for queue in queues {
        queue.close().await;
    }
    let depth = sandbox.queue.depth().await?;
    info!(ready = depth.ready, "queue after the round");
    sandbox.cleanup().await?;
    Ok(Round {
        workers,
        jobs: args.jobs,
        published,
        completed,
        aggregated,
        stats,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "queue_bench: {} jobs per round, prefetch {}, {} publishes in flight",
        args.jobs, args.prefetch, args.publish_concurrency
    );
    for &workers in &args.workers {
        let result = runtime.block_on(round(&args, workers))?;
        result.print();
    }
    Ok(())
}
