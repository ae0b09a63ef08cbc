//! Fault tests of the cluster across processes: real `worker run` processes
//! against the local RabbitMQ and Redis, killed, terminated and cut off
//! mid-job. Each test has its own queue and key prefix (random suffix) and
//! deletes them at the end.
//!
//! Three tests touch the shared servers themselves: one stops and starts the
//! broker's app, one lowers the broker's consumer timeout for a while, one
//! restarts Redis without its data. They hold the servers exclusively
//! ([`exclusive_servers`]) so the other tests of this binary that use them
//! ([`shared_servers`]) wait for them. Each has `restart` in its name: skip
//! them with `-- --skip restart` where other users share the servers.
//!
//! The worker binary comes from the same target directory as this test
//! (`cargo test --workspace` builds it).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::chain::MemoryChain;
use common::clock::now_ms;
use common::job::{JobId, JobMessage, JobStatus, JobV1};
use common::queue::{JobQueue, RabbitConfig, RabbitQueue};
use common::result::{FailureCode, Outcome};
use common::store::{JobRecord, Lease, PublishCheck, ResultStore};
use common::submission::CommitString;
use coordinator::reconcile::{ReconcileSettings, Reconciler};
use coordinator::service::{Coordinator, LoopSettings};
use coordinator::view::SharedView;
use tests::proxy::{CutProxy, url_addr, url_via};
use tests::sandbox::{
    Sandbox, WorkerProcess, eventually, exclusive_servers, init_tracing, rabbitmqctl,
    redis_client_ports, redis_port, restart_rabbitmq, restart_redis, shared_servers,
};
use tokio::sync::{RwLockReadGuard, RwLockWriteGuard};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Long enough to kill mid-job: a few seconds on the tiny model.
const SLOW_SAMPLES: usize = 500;
/// A job of well under a second.
const QUICK_SAMPLES: usize = 4;

/// A test's start: logs, the shared servers (held while the guard lives) and
/// a sandbox named `test`.
async fn start(test: &str) -> Result<(RwLockReadGuard<'static, ()>, Sandbox)> {
    init_tracing();
    let servers = shared_servers().await;
    Ok((servers, Sandbox::new(test).await?))
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

/// [`start`] for a test that restarts the shared servers or changes their
/// settings, holding them alone ([`exclusive_servers`]).
async fn start_exclusive(test: &str) -> Result<(RwLockWriteGuard<'static, ()>, Sandbox)> {
    init_tracing();
    let servers = exclusive_servers().await;
    Ok((servers, Sandbox::new(test).await?))
}

fn spawn(sandbox: &Sandbox, name: &str, args: &[String]) -> Result<WorkerProcess> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sandbox.spawn_worker(name, &args)
}

/// A worker ([`worker_args`]) whose jobs run long enough to be interrupted.
/// Tests with two workers share one profile instead: a second write of the
/// file could be read half-written by the first worker.
fn slow_worker(sandbox: &Sandbox, name: &str) -> Result<WorkerProcess> {
    let args = worker_args(&sandbox.slow_profile("slow", SLOW_SAMPLES)?);
    spawn(sandbox, name, &args)
}

/// A worker ([`worker_args`]) whose jobs take well under a second.
fn quick_worker(sandbox: &Sandbox, name: &str) -> Result<WorkerProcess> {
    let args = worker_args(&sandbox.slow_profile("quick", QUICK_SAMPLES)?);
    spawn(sandbox, name, &args)
}

/// RUNNING and past the model fetch: the evaluation itself is under way.
fn evaluating(record: &JobRecord) -> bool {
    record.status == JobStatus::Running && record.progress > 0.05
}

/// Waits up to a minute until `id` is [`evaluating`].
async fn wait_evaluating(sandbox: &Sandbox, id: &JobId) -> Result<JobRecord> {
    sandbox
        .wait_record(id, "the job to run", Duration::from_secs(60), evaluating)
        .await
}

/// Submits a job for a new tiny model `ns/<name>` (`seed` makes its weights).
async fn submit_tiny(sandbox: &Sandbox, name: &str, seed: u64) -> Result<JobId> {
    let model = sandbox.tiny_model("ns", name, seed).await?;
    sandbox.submit(model).await
}

/// A job for a new tiny model `ns/<name>`, [`evaluating`] on a
/// [`slow_worker`] named `worker`, started for it.
async fn job_under_way(
    sandbox: &Sandbox,
    name: &str,
    seed: u64,
    worker: &str,
) -> Result<(WorkerProcess, JobId)> {
    let model = sandbox.tiny_model("ns", name, seed).await?;
    let worker = slow_worker(sandbox, worker)?;
    let id = sandbox.submit(model).await?;
    wait_evaluating(sandbox, &id).await?;
    Ok((worker, id))
}

/// How many times any of `workers` stored a result for `id`.
fn results_stored(workers: &[&WorkerProcess], id: &JobId) -> usize {
    workers
        .iter()
        .map(|w| w.job_events(id, "result stored"))
        .sum()
}

/// Waits up to 30 s until the job queue has `ready` ready messages (`what`
/// names the wait).
async fn wait_ready(sandbox: &Sandbox, what: &str, ready: u64) -> Result<()> {
    eventually(what, Duration::from_secs(30), || async {
        Ok((sandbox.queue.depth().await?.ready == ready).then_some(()))
    })
    .await
}

/// Waits until the job queue has no ready message.
async fn wait_queue_drained(sandbox: &Sandbox) -> Result<()> {
    wait_ready(sandbox, "an empty job queue", 0).await
}

/// Waits until the dead-letter queue holds `count` messages (`what` names the wait).
async fn wait_dead_letters(
    sandbox: &Sandbox,
    what: &str,
    count: u64,
    timeout: Duration,
) -> Result<()> {
    eventually(what, timeout, || async {
        Ok((sandbox.queue.dead_letter_depth().await? == count).then_some(()))
    })
    .await
}

/// Checks that the job queue holds `ready` messages and the dead-letter
/// queue `dead_letters`, then deletes the sandbox's queues and keys.
async fn cleanup_checking_queues(sandbox: Sandbox, ready: u64, dead_letters: u64) -> Result<()> {
    assert_eq!(sandbox.queue.depth().await?.ready, ready, "ready messages");
    assert_eq!(
        sandbox.queue.dead_letter_depth().await?,
        dead_letters,
        "dead letters"
    );
    sandbox.cleanup().await
}

/// The coordinator loop's settings in these tests: dry run, no aggregation.
fn loop_settings() -> LoopSettings {
    LoopSettings {
        dry_run: true,
        ..LoopSettings::new("v1", 1_000_000, Duration::from_millis(300))
    }
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
        loop_settings(),
        SharedView::default(),
    );
    tokio::spawn(async move {
        let mut reclaimed = 0;
        // Bounded by the test's own deadlines: it cancels `stop`.
        while !stop.is_cancelled() {
            reclaimed += coordinator.tick().await?.reconciled.reclaimed.len();
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
    let (_servers, sandbox) = start("kill").await?;
    let model = sandbox.tiny_model("ns", "killed", 1).await?;
    let args = worker_args(&sandbox.slow_profile("slow", SLOW_SAMPLES)?);
    let mut a = spawn(&sandbox, "kill-a", &args)?;
    let mut b = spawn(&sandbox, "kill-b", &args)?;
    a.wait_consuming().await?;
    b.wait_consuming().await?;
    let stop = CancellationToken::new();
    let reclaimer = spawn_reclaimer(&sandbox, stop.clone());

    let id = sandbox.submit(model).await?;
    let running = wait_evaluating(&sandbox, &id).await?;
    let holder = running.worker.context("a running job names its worker")?;
    let (victim, survivor) = if holder == a.name {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    victim.kill().await?;
    let killed_at = Instant::now();

    let done = sandbox
        .wait_final(&id, "the job to finish", Duration::from_secs(120))
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
    let (_servers, sandbox) = start("many").await?;
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
            .wait_completed(id, "every job to finish", Duration::from_secs(90))
            .await?;
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
    cleanup_checking_queues(sandbox, 0, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_file_fails_once_and_is_not_redelivered() -> Result<()> {
    let (_servers, sandbox) = start("forbidden").await?;
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
    let mut worker = quick_worker(&sandbox, "forbidden-a")?;

    let bad_id = sandbox.submit(bad).await?;
    let failed = sandbox
        .wait_final(&bad_id, "the bad job to fail", Duration::from_secs(60))
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
    sandbox
        .wait_completed(&good_id, "the next job", Duration::from_secs(60))
        .await?;
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
    cleanup_checking_queues(sandbox, 0, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_message_is_dead_lettered_and_the_worker_keeps_serving() -> Result<()> {
    let (_servers, sandbox) = start("poison").await?;
    let good = sandbox.tiny_model("ns", "after-poison", 4).await?;
    let mut worker = quick_worker(&sandbox, "poison-a")?;

    sandbox
        .queue
        .publish_raw(b"\xff\xfe this is not a job", "poison-1")
        .await?;
    wait_dead_letters(
        &sandbox,
        "the poison message in the dead-letter queue",
        1,
        Duration::from_secs(60),
    )
    .await?;
    assert!(worker.logged("poison message, dead-lettering"));

    let id = sandbox.submit(good).await?;
    sandbox
        .wait_completed(&id, "the job after the poison", Duration::from_secs(60))
        .await?;
    assert!(worker.is_running(), "the same worker process served it");
    worker.stop().await?;
    cleanup_checking_queues(sandbox, 0, 1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connections_killed_mid_job_still_finish_once() -> Result<()> {
    let (_servers, sandbox) = start("redis-kill").await?;
    let (mut worker, id) = job_under_way(&sandbox, "cut-off", 5, "redis-kill-a").await?;
    let ports = redis_client_ports(worker.pid()?, redis_port())?;
    ensure!(!ports.is_empty(), "the worker holds no Redis connection");
    let client = redis::Client::open(sandbox.redis.url.expose())?;
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
        .wait_final(&id, "the job to finish", Duration::from_secs(90))
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
    let (_servers, sandbox) = start_exclusive("restart").await?;
    let first = sandbox.tiny_model("ns", "before", 6).await?;
    let second = sandbox.tiny_model("ns", "after", 7).await?;
    let mut worker = slow_worker(&sandbox, "restart-a")?;

    let first_id = sandbox.submit(first).await?;
    wait_evaluating(&sandbox, &first_id).await?;
    let outage = Instant::now();
    let restarted = restart_rabbitmq().await;
    eprintln!("broker away for {:?}", outage.elapsed());
    restarted?;
    let second_id = sandbox.submit(second).await?;

    for id in [&first_id, &second_id] {
        sandbox
            .wait_completed(id, "both jobs to finish", Duration::from_secs(120))
            .await?;
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
async fn job_longer_than_the_consumer_timeout_is_never_restarted() -> Result<()> {
    let (_servers, sandbox) = start_exclusive("consumer-timeout").await?;
    let model = sandbox.tiny_model("ns", "long", 8).await?;
    let args = worker_args(&sandbox.slow_profile("long", SLOW_SAMPLES * 3)?);
    let overridden = ConsumerTimeoutOverride::set(1_500, 500).await?;
    let mut a = spawn(&sandbox, "timeout-a", &args)?;
    a.wait_consuming().await?;
    let id = sandbox.submit(model).await?;
    wait_evaluating(&sandbox, &id).await?;
    // The second worker joins once the first holds the job, so any delivery it
    // gets is the broker's redelivery.
    let mut b = spawn(&sandbox, "timeout-b", &args)?;
    let done = sandbox
        .wait_final(&id, "the job to finish", Duration::from_secs(180))
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
    let (_servers, sandbox) = start_exclusive("redis-restart").await?;
    let model = sandbox.tiny_model("ns", "wiped", 10).await?;
    let chain = Arc::new(MemoryChain::new(1_000, "5Validator", 1));
    chain.register("5Validator", true);
    chain.register("5Miner", false);
    let commit = CommitString::bound_to("ns", "wiped", "chatml", "5Miner", None).to_string();
    chain.commit("5Miner", commit.as_bytes())?;
    let mut worker = slow_worker(&sandbox, "wipe-a")?;
    worker.wait_consuming().await?;
    let stop = CancellationToken::new();
    let coordinator = spawn_coordinator(&sandbox, chain, stop.clone());

    let id = JobId::for_model(&model, "v1");
    wait_evaluating(&sandbox, &id).await?;
    restart_redis(false).await?;
    let done = sandbox
        .wait_final(
            &id,
            "the job to finish after the restart",
            Duration::from_secs(180),
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
    let (_servers, sandbox) = start("sigterm").await?;
    let (mut worker, id) = job_under_way(&sandbox, "interrupted", 8, "sigterm-a").await?;
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
    wait_ready(&sandbox, "the handed-back job on the queue", 1).await?;

    // The next worker gets the same message again and finishes it.
    let mut next = quick_worker(&sandbox, "sigterm-b")?;
    let done = sandbox
        .wait_completed(&id, "the job to finish", Duration::from_secs(60))
        .await?;
    assert_eq!(done.attempts, 2, "{done:?}");
    next.stop().await?;
    assert_eq!(next.job_events(&id, "result stored"), 1);
    assert_eq!(worker.job_events(&id, "result stored"), 0);
    sandbox.cleanup().await
}

// The job lifecycle's owner, the coordinator's reconciler, against the real
// broker and store: no job is stranded, duplicated or left QUEUED forever.

/// Settings of a reconciler that fails fast, for the lifecycle tests.
fn reconcile_settings(max_requeues: u32, max_reclaims: u32) -> ReconcileSettings {
    ReconcileSettings {
        publish_stale_after: Duration::from_secs(2),
        max_requeues,
        max_reclaims,
        ..ReconcileSettings::default()
    }
}

/// A worker's own connection, so that the sandbox's connection never
/// consumes (a consumer's prefetch would hide messages from `depth`). Close
/// it before counting: its prefetched messages go back to the queue.
async fn consumer(sandbox: &Sandbox) -> Result<RabbitQueue> {
    Ok(RabbitQueue::connect(RabbitConfig {
        consumer_tag: format!("{}-consumer", sandbox.name),
        ..sandbox.rabbit.clone()
    })
    .await?)
}

/// Takes the next delivery of `queue` within 10 s.
async fn take(queue: &RabbitQueue) -> Result<common::queue::Delivery> {
    tokio::time::timeout(Duration::from_secs(10), queue.next_delivery())
        .await
        .context("a delivery within 10 s")?
        .map_err(Into::into)
}

/// A worker that takes the next message on its own connection, claims the
/// job as `worker` for `lease`, acks the message and goes away.
async fn claim_next(sandbox: &Sandbox, worker: &str, lease: Duration) -> Result<JobV1> {
    let queue = consumer(sandbox).await?;
    let delivery = take(&queue).await?;
    let job = JobMessage::decode(&delivery.body)?.job().clone();
    sandbox
        .store
        .claim(&job, Lease::new(worker, now_ms(), lease))
        .await?;
    delivery.ack().await?;
    queue.close().await;
    Ok(job)
}

/// Ready messages of the sandbox's queue once the broker's count settles.
async fn settled_depth(sandbox: &Sandbox) -> Result<u64> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(sandbox.queue.depth().await?.ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_during_a_broker_outage_completes_when_the_broker_returns() -> Result<()> {
    let (_servers, sandbox) = start("outage").await?;
    let mut worker = quick_worker(&sandbox, "outage-w")?;
    worker.wait_consuming().await?;

    // The coordinator reaches the broker through a link the test cuts; its
    // publisher gives up after 2 s, far less than the outage.
    let proxy = CutProxy::start(url_addr(sandbox.rabbit.url.expose())?).await?;
    let queue = RabbitQueue::lazy(RabbitConfig {
        url: url_via(sandbox.rabbit.url.expose(), proxy.addr()).into(),
        operation_timeout: Duration::from_secs(2),
        ..sandbox.rabbit.clone()
    })?;
    let chain = Arc::new(MemoryChain::new(1_000, "5Validator", 1));
    chain.register("5Validator", true);
    let mut coordinator = Coordinator::new(
        chain.clone(),
        Arc::new(queue),
        Arc::new(sandbox.store.clone()),
        loop_settings(),
        SharedView::default(),
    );
    coordinator.tick().await?;

    // The broker goes away exactly when a miner commits.
    proxy.cut();
    sandbox.tiny_model("miners", "outage", 31).await?;
    chain.register("5Miner", false);
    let commit = CommitString::bound_to("miners", "outage", "chatml", "5Miner", None);
    chain.commit("5Miner", commit.to_string().as_bytes())?;
    chain.advance(1);
    let id = JobId::for_model(&coordinator::leaderboard::model_of(&commit), "v1");
    let mut failures = 0;
    for _ in 0..3 {
        let report = coordinator.tick().await?;
        failures += report.reconciled.publish_failures;
        assert!(report.reconciled.published.is_empty(), "{report:?}");
    }
    let waiting = sandbox.record(&id).await?;
    assert_eq!(waiting.status, JobStatus::Queued);
    assert_eq!(
        waiting.published_at_ms, None,
        "no message while the broker is away"
    );
    assert_eq!(failures, 3, "every pass tried, and failed, to publish");
    assert_eq!(waiting.publish_attempts, 3);

    // Back: the next pass publishes it once, and the worker completes it.
    proxy.restore();
    let report = coordinator.tick().await?;
    assert_eq!(report.reconciled.published, vec![id.clone()]);
    assert!(coordinator.tick().await?.reconciled.published.is_empty());
    let done = sandbox
        .wait_completed(&id, "the job to finish", Duration::from_secs(60))
        .await?;
    assert_eq!(done.attempts, 1);
    worker.stop().await?;
    assert_eq!(results_stored(&[&worker], &id), 1);
    sandbox.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_gives_exactly_one_new_message_per_expiry() -> Result<()> {
    let (_servers, sandbox) = start("expiry").await?;
    let id = submit_tiny(&sandbox, "expiry", 32).await?;
    let reconciler = sandbox.reconciler_with(reconcile_settings(5, 2));
    let lease = Duration::from_millis(300);
    for expiry in 1..=2u32 {
        // A worker takes the job and dies; every other worker is busy, so
        // nothing consumes while the coordinator ticks several times.
        claim_next(&sandbox, &format!("dies-{expiry}"), lease).await?;
        assert_eq!(settled_depth(&sandbox).await?, 0);
        tokio::time::sleep(lease + Duration::from_millis(100)).await;
        let mut reclaimed = 0;
        let mut published = 0;
        for _ in 0..5 {
            let report = reconciler.run_once().await?;
            reclaimed += report.reclaimed.len();
            published += report.published.len();
        }
        assert_eq!((reclaimed, published), (1, 1), "expiry {expiry}");
        assert_eq!(
            settled_depth(&sandbox).await?,
            1,
            "one message for expiry {expiry}"
        );
        let record = sandbox.record(&id).await?;
        assert_eq!(
            (record.status, record.reclaims),
            (JobStatus::Queued, expiry)
        );
    }
    // A third death in a row: the evaluation kills its workers; it fails,
    // with a reason, instead of looping.
    claim_next(&sandbox, "dies-3", lease).await?;
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let report = reconciler.run_once().await?;
    assert_eq!(
        report.failed,
        vec![(id.clone(), FailureCode::DeliveryLimit)]
    );
    let record = sandbox.record(&id).await?;
    assert_eq!(record.status, JobStatus::Failed);
    assert_eq!(settled_depth(&sandbox).await?, 0);
    sandbox.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_at_the_delivery_limit_is_requeued_then_failed_never_left_queued() -> Result<()> {
    let (_servers, sandbox) = start("limit").await?;
    let id = submit_tiny(&sandbox, "limit", 33).await?;
    let reconciler = sandbox.reconciler_with(reconcile_settings(1, 3));
    let limit = sandbox.rabbit.delivery_limit;
    for round in 0..2u32 {
        // Every worker that takes it hands it back (a transient error).
        let worker = consumer(&sandbox).await?;
        for _ in 0..limit {
            let delivery = take(&worker).await?;
            let job = JobMessage::decode(&delivery.body)?.job().clone();
            sandbox
                .store
                .claim(
                    &job,
                    Lease::new("hands-back", now_ms(), Duration::from_secs(60)),
                )
                .await?;
            sandbox.store.release(&id, "hands-back").await?;
            delivery.retry().await?;
        }
        worker.close().await;
        wait_dead_letters(&sandbox, "the dead letter", 1, Duration::from_secs(10)).await?;
        let record = sandbox.record(&id).await?;
        assert_eq!(
            record.status,
            JobStatus::Queued,
            "stranded until reconciled"
        );
        let report = reconciler.run_once().await?;
        assert_eq!(report.dead_letters, 1, "round {round}: {report:?}");
        assert_eq!(sandbox.queue.dead_letter_depth().await?, 0);
        let record = sandbox.record(&id).await?;
        if round == 0 {
            // Not the model's fault: queued again, with a new message.
            assert_eq!(report.requeued, vec![id.clone()]);
            assert_eq!(report.published, vec![id.clone()]);
            assert_eq!((record.status, record.requeues), (JobStatus::Queued, 1));
            assert_eq!(settled_depth(&sandbox).await?, 1);
        } else {
            // Out of requeues: FAILED with a reason, not QUEUED forever.
            assert_eq!(
                report.failed,
                vec![(id.clone(), FailureCode::DeliveryLimit)]
            );
            assert_eq!(record.status, JobStatus::Failed);
            let Some(Outcome::Failed(reason)) = record.result.map(|r| r.outcome) else {
                panic!("a failed job has a reason");
            };
            assert!(reason.message.contains("handed the job back"), "{reason}");
            assert_eq!(settled_depth(&sandbox).await?, 0);
        }
    }

    // A message the workers refuse as unreadable fails its job as invalid_job.
    let refused = submit_tiny(&sandbox, "refused", 34).await?;
    let worker = consumer(&sandbox).await?;
    take(&worker).await?.dead_letter().await?;
    worker.close().await;
    wait_dead_letters(&sandbox, "the refused message", 1, Duration::from_secs(10)).await?;
    let report = reconciler.run_once().await?;
    assert_eq!(
        report.failed,
        vec![(refused.clone(), FailureCode::InvalidJob)]
    );
    assert_eq!(sandbox.record(&refused).await?.status, JobStatus::Failed);
    sandbox.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_killed_between_enqueue_and_publish_is_repaired_by_the_next() -> Result<()> {
    let (_servers, sandbox) = start("killed-coord").await?;
    let settings = reconcile_settings(5, 3);
    let store: Arc<dyn ResultStore> = Arc::new(sandbox.store.clone());
    let queue: Arc<dyn JobQueue> = Arc::new(sandbox.queue.clone());
    let job = |name: &str| {
        JobMessage::v1(
            common::job::ModelRef {
                namespace: "ns".into(),
                name: name.into(),
                revision: "main".into(),
                chat_template: "chatml".into(),
            },
            "v1",
            common::job::JobOrigin::Operator {
                requested_by: "test".into(),
            },
            now_ms(),
        )
    };
    // Killed right after the enqueue…
    let enqueued = job("after-enqueue");
    store.enqueue(enqueued.job()).await?;
    // …and right after claiming the publish, before the broker saw it.
    let claimed = job("mid-publish");
    store.enqueue(claimed.job()).await?;
    assert_eq!(
        store
            .begin_publish(
                claimed.id(),
                PublishCheck {
                    now_ms: now_ms(),
                    stale_after: settings.publish_stale_after
                }
            )
            .await?,
        Some(1)
    );

    // The next coordinator (two of them, even) publishes each exactly once:
    // the first at once, the second once the dead publisher's claim is stale.
    let next = Reconciler::new(store.clone(), queue.clone(), settings.clone());
    let twin = Reconciler::new(store.clone(), queue.clone(), settings.clone());
    let (a, b) = tokio::join!(next.run_once(), twin.run_once());
    let mut published: Vec<JobId> = [a?.published, b?.published].concat();
    assert_eq!(published, vec![enqueued.id().clone()]);
    assert_eq!(settled_depth(&sandbox).await?, 1);
    tokio::time::sleep(settings.publish_stale_after + Duration::from_millis(200)).await;
    let (a, b) = tokio::join!(next.run_once(), twin.run_once());
    published = [a?.published, b?.published].concat();
    assert_eq!(published, vec![claimed.id().clone()]);
    assert_eq!(settled_depth(&sandbox).await?, 2);
    for _ in 0..3 {
        assert!(next.run_once().await?.is_empty());
    }
    assert_eq!(settled_depth(&sandbox).await?, 2);
    sandbox.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_queue_loses_no_job() -> Result<()> {
    let (_servers, sandbox) = start("purged").await?;
    // Long enough for the purge (an Erlang VM start for rabbitmqctl) and two
    // passes on a loaded machine: the e2e binary runs CPU-heavy tests beside it.
    let settings = ReconcileSettings {
        publish_stale_after: Duration::from_secs(10),
        ..reconcile_settings(5, 3)
    };
    let reconciler = sandbox.reconciler_with(settings.clone());
    let first = submit_tiny(&sandbox, "purged-a", 35).await?;
    let second = submit_tiny(&sandbox, "purged-b", 36).await?;
    assert_eq!(settled_depth(&sandbox).await?, 2);

    // Fresh publications are left alone, even from an empty queue: a
    // message younger than `publish_stale_after` may be on its way.
    tests::sandbox::rabbitmqctl(&["purge_queue", &sandbox.rabbit.queue]).await?;
    assert_eq!(settled_depth(&sandbox).await?, 0);
    for _ in 0..2 {
        assert!(reconciler.run_once().await?.lost.is_empty());
    }
    // Older ones are replaced, once, after two sightings in a row.
    tokio::time::sleep(settings.publish_stale_after + Duration::from_millis(200)).await;
    let sighted = reconciler.run_once().await?;
    assert!(
        sighted.is_empty(),
        "one sighting replaces nothing: {sighted:?}"
    );
    let report = reconciler.run_once().await?;
    let mut lost = report.lost.clone();
    lost.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(lost, expected, "{report:?}");
    let mut published = report.published.clone();
    published.sort();
    assert_eq!(published, expected);
    assert_eq!(settled_depth(&sandbox).await?, 2);
    for _ in 0..3 {
        assert!(reconciler.run_once().await?.is_empty());
    }
    assert_eq!(settled_depth(&sandbox).await?, 2);

    // A queue with a message in it says nothing about the others: nothing
    // is replaced while the first job's message waits.
    let job = claim_next(&sandbox, "purge-test", Duration::from_secs(60)).await?;
    tests::sandbox::rabbitmqctl(&["purge_queue", &sandbox.rabbit.queue]).await?;
    let other = if job.job_id == first { &second } else { &first };
    sandbox
        .queue
        .publish(&JobMessage::V1(sandbox.record(other).await?.job))
        .await?;
    tokio::time::sleep(settings.publish_stale_after + Duration::from_millis(200)).await;
    for _ in 0..3 {
        assert!(reconciler.run_once().await?.lost.is_empty());
    }
    // Replaced once, and counted as the broker's loss, not against the
    // job's requeue limit.
    let record = sandbox.record(other).await?;
    assert_eq!(
        (record.status, record.requeues, record.lost_messages),
        (JobStatus::Queued, 0, 1)
    );
    sandbox.cleanup().await
}
