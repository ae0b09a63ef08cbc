//! The worker loop against the real RabbitMQ and Redis: a transient failure
//! is handed back as a new message through the broker and then succeeds; a
//! worker whose clock is behind keeps its lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use common::job::JobStatus;
use common::queue::JobQueue;
use common::scoring::ScoringProfile;
use common::store::ClusterClock;
use tests::sandbox::{Sandbox, shared_servers};
use tokio_util::sync::CancellationToken;
use worker::consumer::{LoopTimings, Worker};
use worker::error::JobError;
use worker::eval::{EvalTask, Evaluation, Evaluator};
use worker::source::LocalDirSource;

/// Fails transiently (as on a host OOM or a lost GPU) on its first call.
struct FlakyOnce {
    calls: AtomicU32,
}

#[async_trait]
impl Evaluator for FlakyOnce {
    async fn evaluate(&self, _task: EvalTask<'_>) -> Result<Evaluation, JobError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(JobError::transient("simulated outage"));
        }
        Ok(tests::uniform_evaluation(0.5, 1, "d".repeat(64)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_is_queued_again_through_the_broker_then_succeeds() -> Result<()> {
    let _servers = shared_servers().await;
    let sandbox = Sandbox::new("transient").await?;
    let model = sandbox.tiny_model("ns", "flaky", 9).await?;
    let evaluator = Arc::new(FlakyOnce {
        calls: AtomicU32::new(0),
    });
    let worker = Worker {
        name: "in-process".into(),
        queue: Arc::new(sandbox.queue.clone()),
        store: Arc::new(sandbox.store.clone()),
        source: Arc::new(LocalDirSource::new(sandbox.models_dir())),
        evaluator: evaluator.clone(),
        profile: ScoringProfile::v1(),
        timings: LoopTimings {
            retry_backoff: Duration::from_millis(100),
            ..LoopTimings::default()
        },
        clock: ClusterClock::default(),
    };
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { worker.run(stop).await }
    });
    let id = sandbox.submit(model).await?;
    let done = sandbox
        .wait_record(&id, "the job to finish", Duration::from_secs(60), |r| {
            r.status.is_final()
        })
        .await?;
    stop.cancel();
    running.await?;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.attempts, 2, "one failed attempt, one that succeeded");
    assert_eq!(evaluator.calls.load(Ordering::SeqCst), 2);
    assert_eq!(sandbox.queue.depth().await?.ready, 0);
    assert_eq!(sandbox.queue.dead_letter_depth().await?, 0);
    sandbox.cleanup().await
}

/// Takes `delay`, then scores like [`FlakyOnce`]'s success.
struct Slow {
    delay: Duration,
}

#[async_trait]
impl Evaluator for Slow {
    async fn evaluate(&self, _task: EvalTask<'_>) -> Result<Evaluation, JobError> {
        tokio::time::sleep(self.delay).await;
        Ok(tests::uniform_evaluation(0.5, 1, "d".repeat(64)))
    }
}

/// This machine's clock as a worker ten minutes behind would read it.
fn ten_minutes_behind() -> u64 {
    common::clock::now_ms() - 10 * 60 * 1000
}

/// A worker whose clock runs ten minutes behind the coordinator's, with a
/// 2 s lease: stamped on its own clock, every lease it took would have
/// expired when taken, and the reconciler running beside it would take the
/// job back until it failed as `delivery_limit`. Stamped on the store's
/// clock, the job completes at its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_clock_is_behind_keeps_its_lease() -> Result<()> {
    let _servers = shared_servers().await;
    let sandbox = Sandbox::new("clock-behind").await?;
    let model = sandbox.tiny_model("ns", "behind", 11).await?;
    let worker = Worker {
        name: "behind".into(),
        queue: Arc::new(sandbox.queue.clone()),
        store: Arc::new(sandbox.store.clone()),
        source: Arc::new(LocalDirSource::new(sandbox.models_dir())),
        evaluator: Arc::new(Slow {
            delay: Duration::from_secs(3),
        }),
        profile: ScoringProfile::v1(),
        timings: LoopTimings {
            lease: Duration::from_secs(2),
            heartbeat: Duration::from_millis(200),
            retry_backoff: Duration::from_millis(100),
        },
        clock: ClusterClock::with_wall_clock(ten_minutes_behind),
    };
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { worker.run(stop).await }
    });
    let id = sandbox.submit(model).await?;
    let reconciler = sandbox.reconciler();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let report = reconciler.run_once().await?;
        assert!(report.reclaimed.is_empty(), "{report:?}");
        let record = sandbox.record(&id).await?;
        if record.status.is_final() {
            break record;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the job did not finish: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.cancel();
    running.await?;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!((done.attempts, done.reclaims), (1, 0), "{done:?}");
    sandbox.cleanup().await
}
