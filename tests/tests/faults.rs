//! Fault tests of the cluster across processes: real `worker run` processes
//! against the local RabbitMQ and Redis, killed, terminated and cut off
//! mid-job. Each test has its own queue and key prefix (random suffix) and
//! deletes them at the end.
//!
//! Three tests touch the shared servers themselves: one stops and starts the
//! broker's app, one lowers the broker's consumer timeout for a while, one
//! restarts Redis without its data. They hold [`BROKER`] exclusively so the
//! other tests of this file wait for them (cargo runs test binaries one at a
//! time). Set `SKIP_BROKER_RESTART=1` to skip them where other users share
//! the servers.
//!
//! The worker binary comes from the same target directory as this test
//! (`cargo test --workspace` builds it).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::chain::MemoryChain;
use common::job::{JobId, JobStatus};
use common::queue::JobQueue;
use common::result::{FailureCode, Outcome};
use common::store::{JobRecord, ResultStore};
use common::submission::CommitString;
use common::weights::WeightsParams;
use coordinator::service::{Coordinator, LoopSettings};
use coordinator::view::SharedView;
use tests::sandbox::{
    Sandbox, WorkerProcess, eventually, rabbitmqctl, redis_client_ports, redis_port,
    restart_rabbitmq, restart_redis,
};
use tokio::sync::RwLock;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Shared by every test; the broker restart test holds it exclusively.
static BROKER: RwLock<()> = RwLock::const_new(());

/// Long enough to kill mid-job: a few seconds on the tiny model.
const SLOW_SAMPLES: usize = 500;
/// A job of well under a second.
const QUICK_SAMPLES: usize = 4;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,lapin=warn")
        .with_test_writer()
        .try_init();
}

/// Flags of a worker with a short lease and the given profile files.
fn worker_args(profile: &(std::path::PathBuf, std::path::PathBuf)) -> Vec<String> {
    vec![
        "--lease".into(),
        "3s".into(),
        "--heartbeat".into(),
        "1s".into(),
        "--profile".into(),
        profile.0.display().to_string(),
        "--dataset".into(),
        profile.1.display().to_string(),
    ]
}

fn spawn(sandbox: &Sandbox, name: &str, args: &[String]) -> Result<WorkerProcess> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sandbox.spawn_worker(name, &args)
}

/// RUNNING and past the model fetch: the evaluation itself is under way.
fn evaluating(record: &JobRecord) -> bool {
    record.status == JobStatus::Running && record.progress > 0.05
}

/// How many times any of `workers` stored a result for `id`.
fn results_stored(workers: &[&WorkerProcess], id: &JobId) -> usize {
    workers
        .iter()
        .map(|w| w.job_events(id, "result stored"))
        .sum()
}

/// Waits until the job queue has no ready message.
async fn wait_queue_drained(sandbox: &Sandbox) -> Result<()> {
    eventually("an empty job queue", Duration::from_secs(30), || async {
        Ok((sandbox.queue.depth().await?.ready == 0).then_some(()))
    })
    .await
}

/// Runs the real coordinator loop (on an empty in-memory chain, so it only
/// reclaims expired leases) and returns how many jobs it re-published.
fn spawn_reclaimer(
    sandbox: &Sandbox,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Result<usize>> {
    spawn_coordinator(
        sandbox,
        Arc::new(MemoryChain::new(1, "5Validator", 1)),
        stop,
    )
}

/// An in-process coordinator on the sandbox's queue and store, ticking
/// every 300 ms until `stop`; returns how many jobs it re-published.
fn spawn_coordinator(
    sandbox: &Sandbox,
    chain: Arc<MemoryChain>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Result<usize>> {
    let mut coordinator = Coordinator::new(
        chain,
        Arc::new(sandbox.queue.clone()),
        Arc::new(sandbox.store.clone()),
        LoopSettings {
            profile_version: "v1".into(),
            epoch_start_block: 0,
            aggregate_every_blocks: 1_000_000,
            weights: WeightsParams::default(),
            version_key: 1,
            dry_run: true,
            poll_interval: Duration::from_millis(300),
        },
        SharedView::default(),
    );
    tokio::spawn(async move {
        let mut reclaimed = 0;
        // Bounded by the test's own deadlines: it cancels `stop`.
        while !stop.is_cancelled() {
            reclaimed += coordinator.tick().await?.reclaimed.len();
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
        }
        Ok(reclaimed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_job_completes_on_another_worker_exactly_once() -> Result<()> {
    init_tracing();
    let _broker = BROKER.read().await;
    let sandbox = Sandbox::new("kill").await?;
    let model = sandbox.tiny_model("ns", "killed", 1).await?;
    let args = worker_args(&sandbox.slow_profile("slow", SLOW_SAMPLES)?);
    let mut a = spawn(&sandbox, "kill-a", &args)?;
    let mut b = spawn(&sandbox, "kill-b", &args)?;
    a.wait_consuming().await?;
    b.wait_consuming().await?;
    let stop = CancellationToken::new();
    let reclaimer = spawn_reclaimer(&sandbox, stop.clone());

    let id = sandbox.submit(model).await?;
    let running = sandbox
        .wait_record(&id, "the job to run", Duration::from_secs(60), evaluating)
        .await?;
    let holder = running.worker.context("a running job names its worker")?;
    let (victim, survivor) = if holder == a.name {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    victim.kill().await?;
    let killed_at = Instant::now();

    let done = sandbox
        .wait_record(&id, "the job to finish", Duration::from_secs(120), |r| {
            r.status.is_final()
        })
        .await?;
    stop.cancel();
    let reclaimed = reclaimer.await??;
    eprintln!(
        "killed {holder}; finished {:?} later; coordinator re-published {reclaimed} time(s); \
         survivor dropped {} duplicate delivery(ies) while the lease was live",
        killed_at.elapsed(),
        survivor.job_events(
            &id,
            "job leased by another worker, dropping duplicate delivery"
        ),
    );
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert!(done.attempts >= 2, "{done:?}");
    let result = done.result.as_ref().context("a final job has a result")?;
    assert_eq!(result.worker, survivor.name);
    assert!(result.attempt >= 2, "{result:?}");
    assert!(matches!(result.outcome, Outcome::Completed(_)));
    assert_eq!(sandbox.store.leaderboard(10).await?.len(), 1);

    // Re-published copies, if any, are dropped as duplicates.
    wait_queue_drained(&sandbox).await?;
    if holder == a.name {
        b.stop().await?;
    } else {
        a.stop().await?;
    }
    // Logs are complete once the processes are gone.
    assert_eq!(results_stored(&[&a, &b], &id), 1, "finish recorded once");
    sandbox.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_through_two_workers_complete_exactly_once() -> Result<()> {
    init_tracing();
    let _broker = BROKER.read().await;
    let sandbox = Sandbox::new("many").await?;
    let args = worker_args(&sandbox.slow_profile("quick", QUICK_SAMPLES)?);
    let mut a = spawn(&sandbox, "many-a", &args)?;
    let mut b = spawn(&sandbox, "many-b", &args)?;
    a.wait_consuming().await?;
    b.wait_consuming().await?;

    let mut ids = Vec::new();
    for i in 0..6 {
        let model = sandbox.tiny_model("ns", &format!("m{i}"), 10 + i).await?;
        ids.push(sandbox.submit(model).await?);
    }
    for id in &ids {
        let done = sandbox
            .wait_record(id, "every job to finish", Duration::from_secs(90), |r| {
                r.status.is_final()
            })
            .await?;
        assert_eq!(done.status, JobStatus::Completed, "{done:?}");
        assert_eq!(done.attempts, 1, "{done:?}");
    }
    let board = sandbox.store.leaderboard(100).await?;
    assert_eq!(board.len(), ids.len());

    // Stopped workers give back whatever they hold unacked: nothing may be left.
    a.stop().await?;
    b.stop().await?;
    for id in &ids {
        assert_eq!(results_stored(&[&a, &b], id), 1, "job {id} stored once");
        let runs: usize = [&a, &b]
            .iter()
            .map(|w| w.job_events(id, "evaluating"))
            .sum();
        assert_eq!(runs, 1, "job {id} evaluated once");
    }
    let per_worker: Vec<usize> = [&a, &b]
        .iter()
        .map(|w| ids.iter().map(|id| w.job_events(id, "result stored")).sum())
        .collect();
    eprintln!("jobs per worker: {per_worker:?}");
    assert_eq!(sandbox.queue.depth().await?.ready, 0);
    assert_eq!(sandbox.queue.dead_letter_depth().await?, 0);
    sandbox.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_file_fails_once_and_is_not_redelivered() -> Result<()> {
    init_tracing();
    let _broker = BROKER.read().await;
    let sandbox = Sandbox::new("forbidden").await?;
    let bad = sandbox.tiny_model("ns", "pickled", 2).await?;
    std::fs::write(
        sandbox
            .models_dir()
            .join("ns")
            .join("pickled")
            .join("pytorch_model.bin"),
        b"not really a pickle",
    )?;
    let good = sandbox.tiny_model("ns", "fine", 3).await?;
    let args = worker_args(&sandbox.slow_profile("quick", QUICK_SAMPLES)?);
    let mut worker = spawn(&sandbox, "forbidden-a", &args)?;

    let bad_id = sandbox.submit(bad).await?;
    let failed = sandbox
        .wait_record(
            &bad_id,
            "the bad job to fail",
            Duration::from_secs(60),
            |r| r.status.is_final(),
        )
        .await?;
    assert_eq!(failed.status, JobStatus::Failed, "{failed:?}");
    match &failed.result.as_ref().context("a result")?.outcome {
        Outcome::Failed(reason) => {
            assert_eq!(reason.code, FailureCode::ForbiddenFile, "{reason:?}");
            assert!(reason.message.contains("pytorch_model.bin"), "{reason:?}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // A later job on the same single consumer is a barrier: once it is done,
    // any redelivery of the bad job would have been seen first.
    let good_id = sandbox.submit(good).await?;
    let done = sandbox
        .wait_record(&good_id, "the next job", Duration::from_secs(60), |r| {
            r.status.is_final()
        })
        .await?;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    worker.stop().await?;

    let deliveries: Vec<_> = worker
        .events()
        .into_iter()
        .filter(|e| e["span"]["job_id"] == bad_id.as_str())
        .map(|e| e["span"]["delivery"].as_u64())
        .collect();
    assert!(!deliveries.is_empty());
    assert!(
        deliveries.iter().all(|d| *d == Some(1)),
        "the failed job was delivered again: {deliveries:?}"
    );
    assert_eq!(worker.job_events(&bad_id, "evaluating"), 1);
    assert_eq!(failed.attempts, 1);
    assert_eq!(sandbox.queue.depth().await?.ready, 0);
    assert_eq!(sandbox.queue.dead_letter_depth().await?, 0);
    sandbox.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_message_is_dead_lettered_and_the_worker_keeps_serving() -> Result<()> {
    init_tracing();
    let _broker = BROKER.read().await;
    let sandbox = Sandbox::new("poison").await?;
    let good = sandbox.tiny_model("ns", "after-poison", 4).await?;
    let args = worker_args(&sandbox.slow_profile("quick", QUICK_SAMPLES)?);
    let mut worker = spawn(&sandbox, "poison-a", &args)?;

    sandbox
        .queue
        .publish_raw(b"\xff\xfe this is not a job", "poison-1")
        .await?;
    eventually(
        "the poison message in the dead-letter queue",
        Duration::from_secs(60),
        || async { Ok((sandbox.queue.dead_letter_depth().await? == 1).then_some(())) },
    )
    .await?;
    assert!(worker.logged("poison message, dead-lettering"));

    let id = sandbox.submit(good).await?;
    let done = sandbox
        .wait_record(
            &id,
            "the job after the poison",
            Duration::from_secs(60),
            |r| r.status.is_final(),
        )
        .await?;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert!(worker.is_running(), "the same worker process served it");
    worker.stop().await?;
    assert_eq!(sandbox.queue.depth().await?.ready, 0);
    assert_eq!(sandbox.queue.dead_letter_depth().await?, 1);
    sandbox.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connections_killed_mid_job_still_finish_once() -> Result<()> {
    init_tracing();
    let _broker = BROKER.read().await;
    let sandbox = Sandbox::new("redis-kill").await?;
    let model = sandbox.tiny_model("ns", "cut-off", 5).await?;
    let args = worker_args(&sandbox.slow_profile("slow", SLOW_SAMPLES)?);
    let mut worker = spawn(&sandbox, "redis-kill-a", &args)?;

    let id = sandbox.submit(model).await?;
    sandbox
        .wait_record(&id, "the job to run", Duration::from_secs(60), evaluating)
        .await?;
    let ports = redis_client_ports(worker.pid()?, redis_port())?;
    ensure!(!ports.is_empty(), "the worker holds no Redis connection");
    let client = redis::Client::open(sandbox.redis.url.as_str())?;
    let mut admin = client.get_multiplexed_async_connection().await?;
    let mut killed = 0u64;
    for port in &ports {
        let n: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ADDR")
            .arg(format!("127.0.0.1:{port}"))
            .query_async(&mut admin)
            .await?;
        killed += n;
    }
    assert!(killed >= 1, "no worker connection was killed ({ports:?})");

    let done = sandbox
        .wait_record(&id, "the job to finish", Duration::from_secs(90), |r| {
            r.status.is_final()
        })
        .await?;
    eprintln!(
        "killed {killed} redis connection(s); worker retried a command: {}",
        worker.logged("redis command failed, retrying")
    );
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.attempts, 1, "{done:?}");
    worker.stop().await?;
    assert_eq!(results_stored(&[&worker], &id), 1);
    assert_eq!(sandbox.queue.depth().await?.ready, 0);
    sandbox.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_worker_reconnects_without_restart() -> Result<()> {
    if std::env::var_os("SKIP_BROKER_RESTART").is_some() {
        eprintln!("SKIP_BROKER_RESTART is set: not restarting the broker");
        return Ok(());
    }
    init_tracing();
    let _broker = BROKER.write().await;
    let sandbox = Sandbox::new("restart").await?;
    let first = sandbox.tiny_model("ns", "before", 6).await?;
    let second = sandbox.tiny_model("ns", "after", 7).await?;
    let args = worker_args(&sandbox.slow_profile("slow", SLOW_SAMPLES)?);
    let mut worker = spawn(&sandbox, "restart-a", &args)?;

    let first_id = sandbox.submit(first).await?;
    sandbox
        .wait_record(
            &first_id,
            "the job to run",
            Duration::from_secs(60),
            evaluating,
        )
        .await?;
    let outage = Instant::now();
    let restarted = restart_rabbitmq().await;
    eprintln!("broker away for {:?}", outage.elapsed());
    restarted?;
    let second_id = sandbox.submit(second).await?;

    for id in [&first_id, &second_id] {
        let done = sandbox
            .wait_record(id, "both jobs to finish", Duration::from_secs(120), |r| {
                r.status.is_final()
            })
            .await?;
        assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    }
    assert!(
        worker.is_running(),
        "the same worker process reconnected and served both"
    );
    wait_queue_drained(&sandbox).await?;
    worker.stop().await?;
    for id in [&first_id, &second_id] {
        assert_eq!(results_stored(&[&worker], id), 1, "job {id} stored once");
    }
    eprintln!(
        "first job: attempts {}, duplicate deliveries dropped {}",
        sandbox.record(&first_id).await?.attempts,
        worker.job_events(
            &first_id,
            "job already finished, dropping duplicate delivery"
        ),
    );
    assert_eq!(sandbox.queue.depth().await?.ready, 0);
    sandbox.cleanup().await
}
/// Restores the broker's consumer timeout settings when dropped, even when
/// the test fails half-way (other tests need the defaults).
struct ConsumerTimeoutOverride;

impl ConsumerTimeoutOverride {
    /// New channels get `timeout_ms`, checked every `tick_ms` (RabbitMQ 3.x
    /// reads both when a channel opens; 4.x would take a queue policy).
    async fn set(timeout_ms: u64, tick_ms: u64) -> Result<Self> {
        let guard = Self;
        rabbitmqctl(&[
            "eval",
            &format!("application:set_env(rabbit, consumer_timeout, {timeout_ms})."),
        ])
        .await?;
        rabbitmqctl(&[
            "eval",
            &format!("application:set_env(rabbit, channel_tick_interval, {tick_ms})."),
        ])
        .await?;
        Ok(guard)
    }
}

impl Drop for ConsumerTimeoutOverride {
    fn drop(&mut self) {
        for setting in ["consumer_timeout, 1800000", "channel_tick_interval, 60000"] {
            let restored = std::process::Command::new("rabbitmqctl")
                .args(["eval", &format!("application:set_env(rabbit, {setting}).")])
                .stdout(std::process::Stdio::null())
                .status();
            if !restored.is_ok_and(|s| s.success()) {
                eprintln!("could not restore the broker setting `{setting}`");
            }
        }
    }
}

/// A job that outlives the broker's consumer timeout: the broker takes the
/// delivery back and redelivers it while the first worker is still
/// evaluating. The lease keeps the second worker from starting it, the first
/// worker's result is stored once, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_longer_than_the_consumer_timeout_runs_once_and_completes() -> Result<()> {
    if std::env::var_os("SKIP_BROKER_RESTART").is_some() {
        eprintln!("SKIP_BROKER_RESTART is set: not changing broker settings");
        return Ok(());
    }
    init_tracing();
    let _broker = BROKER.write().await;
    let sandbox = Sandbox::new("consumer-timeout").await?;
    let model = sandbox.tiny_model("ns", "long", 8).await?;
    let args = worker_args(&sandbox.slow_profile("long", SLOW_SAMPLES * 3)?);
    let overridden = ConsumerTimeoutOverride::set(1_500, 500).await?;
    let mut a = spawn(&sandbox, "timeout-a", &args)?;
    a.wait_consuming().await?;
    let id = sandbox.submit(model).await?;
    sandbox
        .wait_record(&id, "the job to run", Duration::from_secs(60), evaluating)
        .await?;
    // The second worker joins once the first holds the job, so any delivery it
    // gets is the broker's redelivery.
    let mut b = spawn(&sandbox, "timeout-b", &args)?;
    let done = sandbox
        .wait_record(&id, "the job to finish", Duration::from_secs(180), |r| {
            r.status.is_final()
        })
        .await?;
    drop(overridden);
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.attempts, 1, "never started twice: {done:?}");
    wait_queue_drained(&sandbox).await?;
    a.stop().await?;
    b.stop().await?;
    assert_eq!(results_stored(&[&a, &b], &id), 1, "stored once");
    let evaluations = a.job_events(&id, "evaluating") + b.job_events(&id, "evaluating");
    assert_eq!(evaluations, 1, "evaluated once");
    // The timeout did fire: the broker redelivered, and the lease (or the
    // finished record) turned the redelivery away.
    let turned_away = a.job_events(
        &id,
        "job leased by another worker, dropping duplicate delivery",
    ) + b.job_events(
        &id,
        "job leased by another worker, dropping duplicate delivery",
    ) + a.job_events(&id, "job already finished, dropping duplicate delivery")
        + b.job_events(&id, "job already finished, dropping duplicate delivery");
    assert!(
        turned_away >= 1,
        "the consumer timeout never fired: no redelivery was seen"
    );
    sandbox.cleanup().await
}
/// Redis restarted without its data while a job runs: the worker loses its
/// lease and hands the job back, the coordinator notices the missing record
/// and queues the job again, and the job completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_without_data_mid_job_loses_nothing() -> Result<()> {
    if std::env::var_os("SKIP_BROKER_RESTART").is_some() {
        eprintln!("SKIP_BROKER_RESTART is set: not restarting Redis");
        return Ok(());
    }
    init_tracing();
    let _broker = BROKER.write().await;
    let sandbox = Sandbox::new("redis-restart").await?;
    let model = sandbox.tiny_model("ns", "wiped", 10).await?;
    let chain = Arc::new(MemoryChain::new(1_000, "5Validator", 1));
    chain.register("5Validator", true);
    chain.register("5Miner", false);
    let commit = CommitString::bound_to("ns", "wiped", "chatml", "5Miner", None).to_string();
    chain.commit("5Miner", commit.as_bytes())?;
    let args = worker_args(&sandbox.slow_profile("slow", SLOW_SAMPLES)?);
    let mut worker = spawn(&sandbox, "wipe-a", &args)?;
    worker.wait_consuming().await?;
    let stop = CancellationToken::new();
    let coordinator = spawn_coordinator(&sandbox, chain, stop.clone());

    let id = JobId::for_model(&model, "v1");
    sandbox
        .wait_record(&id, "the job to run", Duration::from_secs(60), evaluating)
        .await?;
    restart_redis(false).await?;
    let done = sandbox
        .wait_record(
            &id,
            "the job to finish after the restart",
            Duration::from_secs(180),
            |r| r.status.is_final(),
        )
        .await?;
    stop.cancel();
    coordinator.await??;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(sandbox.store.leaderboard(10).await?.len(), 1);
    wait_queue_drained(&sandbox).await?;
    worker.stop().await?;
    assert_eq!(results_stored(&[&worker], &id), 1, "finish recorded once");
    assert!(
        worker.job_events(&id, "evaluating") >= 2,
        "the interrupted evaluation ran again after the restart"
    );
    sandbox.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_job_hands_the_job_back_and_exits_zero() -> Result<()> {
    init_tracing();
    let _broker = BROKER.read().await;
    let sandbox = Sandbox::new("sigterm").await?;
    let model = sandbox.tiny_model("ns", "interrupted", 8).await?;
    let slow = worker_args(&sandbox.slow_profile("slow", SLOW_SAMPLES)?);
    let mut worker = spawn(&sandbox, "sigterm-a", &slow)?;

    let id = sandbox.submit(model).await?;
    sandbox
        .wait_record(&id, "the job to run", Duration::from_secs(60), evaluating)
        .await?;
    let asked = Instant::now();
    worker.terminate().await?;
    let status = worker.wait_exit(Duration::from_secs(10)).await?;
    let took = asked.elapsed();
    eprintln!("worker exited {status} {took:?} after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");

    let record = sandbox.record(&id).await?;
    assert_eq!(record.status, JobStatus::Queued, "{record:?}");
    assert_eq!(record.lease_expires_at_ms, None, "{record:?}");
    assert_eq!(record.attempts, 1);
    assert!(record.result.is_none());
    eventually(
        "the handed-back job on the queue",
        Duration::from_secs(30),
        || async { Ok((sandbox.queue.depth().await?.ready == 1).then_some(())) },
    )
    .await?;

    // The next worker gets the same message again and finishes it.
    let quick = worker_args(&sandbox.slow_profile("quick", QUICK_SAMPLES)?);
    let mut next = spawn(&sandbox, "sigterm-b", &quick)?;
    let done = sandbox
        .wait_record(&id, "the job to finish", Duration::from_secs(60), |r| {
            r.status.is_final()
        })
        .await?;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.attempts, 2, "{done:?}");
    next.stop().await?;
    assert_eq!(next.job_events(&id, "result stored"), 1);
    assert_eq!(worker.job_events(&id, "result stored"), 0);
    sandbox.cleanup().await
}
