//! The worker loop's failure handling, against the in-memory queue and store,
//! with a scripted evaluator standing in for the engine (the engine has its
//! own tests; these check what the loop does with each kind of outcome).
//! No server is involved, so time is paused: heartbeats, deadlines and
//! back-offs pass at once (the clock waits while the source's blocking
//! precheck of the model directory runs).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::job::{JobId, JobMessage, JobOrigin, JobStatus, ModelRef};
use common::queue::{JobQueue, MemoryQueue};
use common::result::{FailureCode, FailureReason, Outcome};
use common::scoring::ScoringProfile;
use common::store::{ClusterClock, MemoryStore, ResultStore};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use worker::consumer::{LoopTimings, Worker};
use worker::error::JobError;
use worker::eval::{EvalTask, Evaluation, Evaluator};
use worker::source::LocalDirSource;

/// Plays back one scripted outcome per call.
struct Scripted {
    outcomes: Mutex<VecDeque<Step>>,
    calls: Mutex<u32>,
}

enum Step {
    Score(f64),
    Model(FailureCode),
    Transient,
    Sleep(Duration),
}

#[async_trait]
impl Evaluator for Scripted {
    async fn evaluate(&self, task: EvalTask<'_>) -> Result<Evaluation, JobError> {
        *self.calls.lock() += 1;
        task.progress.set(0.5);
        let step = self.outcomes.lock().pop_front().unwrap_or(Step::Score(0.5));
        let score = match step {
            Step::Score(s) => s,
            Step::Model(code) => return Err(FailureReason::new(code, "scripted").into()),
            Step::Transient => return Err(JobError::transient("scripted outage")),
            Step::Sleep(d) => {
                tokio::select! {
                    () = task.cancel.cancelled() => return Err(JobError::Cancelled),
                    () = tokio::time::sleep(d) => 0.5,
                }
            }
        };
        Ok(Evaluation {
            components: common::testsuite::uniform_scores(score),
            tokens: 7,
            dataset_sha256: "d".repeat(64),
            details: Default::default(),
        })
    }
}

/// Runs `worker` in a task until the returned token is cancelled.
fn spawn_worker(worker: Worker) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { worker.run(stop).await }
    });
    (stop, task)
}

struct Harness {
    queue: Arc<MemoryQueue>,
    store: Arc<MemoryStore>,
    evaluator: Arc<Scripted>,
    _models: tempfile::TempDir,
    models_dir: std::path::PathBuf,
}

fn write_model(root: &Path, namespace: &str, name: &str) {
    let dir = root.join(namespace).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    // The smallest config the precheck accepts; the scripted evaluator never loads it.
    let config = r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 512,
        "max_position_embeddings": 512}"#;
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::write(dir.join("model.safetensors"), vec![0u8; 64]).unwrap();
}

fn harness(steps: Vec<Step>) -> Harness {
    let models = tempfile::tempdir().unwrap();
    let models_dir = models.path().to_path_buf();
    write_model(&models_dir, "ns", "good");
    let mut pickled = models_dir.join("ns");
    pickled.push("pickled");
    write_model(&models_dir, "ns", "pickled");
    std::fs::write(pickled.join("pytorch_model.bin"), b"pickle").unwrap();
    Harness {
        queue: Arc::new(MemoryQueue::new(3)),
        store: Arc::new(MemoryStore::new()),
        evaluator: Arc::new(Scripted {
            outcomes: Mutex::new(steps.into()),
            calls: Mutex::new(0),
        }),
        _models: models,
        models_dir,
    }
}

impl Harness {
    fn worker(&self, name: &str, profile: ScoringProfile) -> Worker {
        Worker {
            name: name.into(),
            queue: self.queue.clone(),
            store: self.store.clone(),
            source: Arc::new(LocalDirSource::new(&self.models_dir)),
            evaluator: self.evaluator.clone(),
            profile,
            timings: LoopTimings {
                lease: Duration::from_secs(5),
                heartbeat: Duration::from_millis(100),
                retry_backoff: Duration::from_millis(10),
            },
            clock: ClusterClock::default(),
        }
    }

    async fn submit(&self, name: &str) -> JobId {
        let message = JobMessage::v1(
            ModelRef {
                namespace: "ns".into(),
                name: name.into(),
                revision: "main".into(),
                chat_template: "chatml".into(),
            },
            "v1",
            JobOrigin::Operator {
                requested_by: "test".into(),
            },
            0,
        );
        self.store.enqueue(message.job()).await.unwrap();
        self.queue.publish(&message).await.unwrap();
        message.id().clone()
    }

    /// Runs worker `w` (profile v1) until `id` is final or 10 s pass.
    async fn run(&self, id: &JobId) -> JobStatus {
        self.run_until_final(
            self.worker("w", ScoringProfile::v1()),
            id,
            Duration::from_secs(10),
        )
        .await
    }

    /// The failure recorded for `id`.
    async fn failure(&self, id: &JobId) -> FailureReason {
        let record = self.store.get(id).await.unwrap().unwrap();
        let Outcome::Failed(reason) = record.result.unwrap().outcome else {
            panic!("expected a failure")
        };
        reason
    }

    /// Runs one worker until `id` is final or `limit` passes, then stops it.
    async fn run_until_final(&self, worker: Worker, id: &JobId, limit: Duration) -> JobStatus {
        let (stop, task) = spawn_worker(worker);
        let deadline = tokio::time::Instant::now() + limit;
        let status = loop {
            let status = self.store.get(id).await.unwrap().map(|r| r.status);
            if let Some(s) = status.filter(|s| s.is_final()) {
                break s;
            }
            if tokio::time::Instant::now() > deadline {
                break status.unwrap_or(JobStatus::Queued);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        stop.cancel();
        task.await.unwrap();
        status
    }
}

#[tokio::test(start_paused = true)]
async fn completes_and_acks_once() {
    let h = harness(vec![Step::Score(0.8)]);
    let id = h.submit("good").await;
    let status = h.run(&id).await;
    assert_eq!(status, JobStatus::Completed);
    let record = h.store.get(&id).await.unwrap().unwrap();
    assert!((record.total().unwrap() - 0.8).abs() < 1e-12);
    assert_eq!(record.attempts, 1);
    assert_eq!(
        h.queue.depth().await.unwrap().ready + h.queue.depth().await.unwrap().in_flight,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn duplicate_delivery_is_dropped_without_a_second_evaluation() {
    let h = harness(vec![Step::Score(0.8), Step::Score(0.1)]);
    let id = h.submit("good").await;
    // The same job published again, as after a coordinator restart.
    let again = h.store.get(&id).await.unwrap().unwrap().job;
    h.queue.publish(&JobMessage::V1(again)).await.unwrap();
    let status = h.run(&id).await;
    assert_eq!(status, JobStatus::Completed);
    // Give the loop time to take the duplicate.
    for _ in 0..50 {
        if h.queue.depth().await.unwrap().ready == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let worker = h.worker("w2", ScoringProfile::v1());
    let (stop, task) = spawn_worker(worker);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(
        *h.evaluator.calls.lock(),
        1,
        "the duplicate must not be evaluated"
    );
    assert!((h.store.get(&id).await.unwrap().unwrap().total().unwrap() - 0.8).abs() < 1e-12);
    assert_eq!(h.queue.depth().await.unwrap().ready, 0);
}

#[tokio::test(start_paused = true)]
async fn model_fault_is_final_and_not_retried() {
    let h = harness(vec![Step::Model(FailureCode::NanOutput), Step::Score(0.9)]);
    let id = h.submit("good").await;
    let status = h.run(&id).await;
    assert_eq!(status, JobStatus::Failed);
    let reason = h.failure(&id).await;
    assert_eq!(reason.code, FailureCode::NanOutput);
    assert_eq!(*h.evaluator.calls.lock(), 1);
}

#[tokio::test(start_paused = true)]
async fn forbidden_files_fail_before_evaluation() {
    let h = harness(vec![]);
    let id = h.submit("pickled").await;
    let status = h.run(&id).await;
    assert_eq!(status, JobStatus::Failed);
    let reason = h.failure(&id).await;
    assert_eq!(reason.code, FailureCode::ForbiddenFile);
    assert!(
        reason.message.contains("pytorch_model.bin"),
        "{}",
        reason.message
    );
    assert_eq!(*h.evaluator.calls.lock(), 0);
}

#[tokio::test(start_paused = true)]
async fn unsupported_architecture_fails_before_evaluation() {
    let h = harness(vec![]);
    let dir = h.models_dir.join("ns").join("bert");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"architectures": ["BertModel"], "hidden_size": 64}"#,
    )
    .unwrap();
    std::fs::write(dir.join("model.safetensors"), vec![0u8; 64]).unwrap();
    let id = h.submit("bert").await;
    let status = h.run(&id).await;
    assert_eq!(status, JobStatus::Failed);
    let reason = h.failure(&id).await;
    assert_eq!(reason.code, FailureCode::BadConfig);
    assert!(reason.message.contains("BertModel"), "{}", reason.message);
    assert_eq!(*h.evaluator.calls.lock(), 0);
}

#[tokio::test(start_paused = true)]
async fn transient_failure_is_retried_then_succeeds() {
    let h = harness(vec![Step::Transient, Step::Score(0.6)]);
    let id = h.submit("good").await;
    let status = h.run(&id).await;
    assert_eq!(status, JobStatus::Completed);
    let record = h.store.get(&id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 2);
    assert_eq!(*h.evaluator.calls.lock(), 2);
}

/// Hand-backs are the validator's trouble: five of them, past the queue's
/// delivery limit of three, dead-letter nothing, and the job completes.
#[tokio::test(start_paused = true)]
async fn transient_failures_past_the_delivery_limit_are_never_dead_lettered() {
    let steps = (0..5).map(|_| Step::Transient).chain([Step::Score(0.6)]);
    let h = harness(steps.collect());
    let id = h.submit("good").await;
    let status = h.run(&id).await;
    assert_eq!(status, JobStatus::Completed);
    assert_eq!(h.store.get(&id).await.unwrap().unwrap().attempts, 6);
    assert!(h.queue.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn poison_message_is_dead_lettered_and_the_worker_keeps_serving() {
    let h = harness(vec![Step::Score(0.7)]);
    h.queue
        .publish_raw(b"{\"schema\":\"eval-job/v99\"}".to_vec());
    h.queue.publish_raw(b"\xff not json".to_vec());
    let id = h.submit("good").await;
    let status = h.run(&id).await;
    assert_eq!(status, JobStatus::Completed);
    assert_eq!(h.queue.dead_letters().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn deadline_fails_the_job_as_timeout() {
    let h = harness(vec![Step::Sleep(Duration::from_secs(30))]);
    let id = h.submit("good").await;
    let mut profile = ScoringProfile::v1();
    profile.job_deadline = Duration::from_millis(300);
    let status = h
        .run_until_final(h.worker("w", profile), &id, Duration::from_secs(10))
        .await;
    assert_eq!(status, JobStatus::Failed);
    let reason = h.failure(&id).await;
    assert_eq!(reason.code, FailureCode::Timeout);
}

#[tokio::test(start_paused = true)]
async fn shutdown_mid_job_hands_the_job_back() {
    let h = harness(vec![Step::Sleep(Duration::from_secs(30)), Step::Score(0.4)]);
    let id = h.submit("good").await;
    let worker = h.worker("w1", ScoringProfile::v1());
    let (stop, task) = spawn_worker(worker);
    // Wait until it runs, with progress recorded by a heartbeat.
    for _ in 0..100 {
        let record = h.store.get(&id).await.unwrap().unwrap();
        if record.status == JobStatus::Running && record.progress > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h.store.get(&id).await.unwrap().unwrap().progress >= 0.5);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("worker stops promptly")
        .unwrap();
    let record = h.store.get(&id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Queued, "handed back");
    assert_eq!(
        h.queue.depth().await.unwrap().ready,
        1,
        "redelivered by the queue"
    );
    // Another worker completes it.
    let status = h
        .run_until_final(
            h.worker("w2", ScoringProfile::v1()),
            &id,
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(status, JobStatus::Completed);
    assert_eq!(
        h.store.get(&id).await.unwrap().unwrap().worker.as_deref(),
        Some("w2")
    );
}
