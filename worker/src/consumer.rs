//! The worker loop: take a job, claim it, fetch the model, evaluate, store
//! the result, ack.
//!
//! ```text
//!  next_delivery ──decode──► claim (lease) ──► fetch ──► evaluate ──► finish ──► ack
//!       │            │            │                 │                    │
//!       │       poison: DLQ   finished/leased:   model fault: FAILED ────┘
//!  (cancellable)              ack and skip       transient/cancel: release, hand back
//! ```
//!
//! - Waiting for a job is cancelled at once on shutdown; a running evaluation
//!   is cancelled too and its job handed back (released in the store, queued
//!   again as a new message), so a stopping worker loses nothing.
//! - A hand-back (shutdown, an outage of the hub, the store or the judge) is
//!   never counted toward the queue's delivery limit: the job goes back as a
//!   new message and the delivery is acked. Only deliveries lost with their
//!   worker count, so a long outage delays jobs and fails none.
//! - The ack comes only after the result is durably in the store. If the
//!   worker dies before, the queue redelivers and the store's idempotent
//!   `finish` makes the second result a no-op.
//! - While evaluating, a heartbeat renews the job's lease and publishes
//!   progress. If the lease was lost (the coordinator reclaimed it), the
//!   evaluation is cancelled: someone else owns the job now.
//! - The whole of fetch + evaluate runs under the profile's hard deadline;
//!   running past it is the model's fault (FAILED, `timeout`).

use std::sync::Arc;
use std::time::Duration;

use common::job::{JobMessage, JobV1};
use common::queue::{Delivery, JobQueue};
use common::result::{FailureCode, FailureReason, Outcome, ResultMessage, ResultV1, Scores};
use common::scoring::ScoringProfile;
use common::store::{Claim, ClusterClock, Finish, Lease, ResultStore, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::error::JobError;
use crate::eval::{EvalTask, Evaluator, Progress};
use crate::metrics;
use crate::source::ModelSource;

/// Timings of the loop.
#[derive(Debug, Clone, Copy)]
pub struct LoopTimings {
    /// Lease taken on a job; renewed every `heartbeat`.
    pub lease: Duration,
    pub heartbeat: Duration,
    /// Pause before handing back a job that failed transiently.
    pub retry_backoff: Duration,
}

impl Default for LoopTimings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            heartbeat: Duration::from_secs(15),
            retry_backoff: Duration::from_secs(5),
        }
    }
}

/// One worker: consumes jobs one at a time.
pub struct Worker {
    pub name: String,
    pub queue: Arc<dyn JobQueue>,
    pub store: Arc<dyn ResultStore>,
    pub source: Arc<dyn ModelSource>,
    pub evaluator: Arc<dyn Evaluator>,
    pub profile: ScoringProfile,
    pub timings: LoopTimings,
    /// What claims, leases and results are stamped with: the store's time.
    pub clock: ClusterClock,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("profile", &self.profile.version)
            .finish()
    }
}

impl Worker {
    /// Runs until `shutdown` fires; returns once the in-flight job, if any,
    /// is finished or handed back.
    pub async fn run(&self, shutdown: CancellationToken) {
        info!(worker = %self.name, profile = %self.profile.version, "worker started");
        loop {
            // Biased: after a job was handed back on shutdown its message may
            // already be redelivered to us; it must not be taken again.
            let delivery = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                delivery = self.queue.next_delivery() => delivery,
            };
            match delivery {
                Ok(delivery) => self.handle(delivery, &shutdown).await,
                Err(e) => {
                    warn!(worker = %self.name, error = %e, "job queue unavailable, retrying");
                    pause(self.timings.retry_backoff, &shutdown).await;
                }
            }
        }
        info!(worker = %self.name, "worker stopped");
    }

    async fn handle(&self, delivery: Delivery, shutdown: &CancellationToken) {
        let _busy = metrics::BusyGuard::start();
        let message = match JobMessage::decode(&delivery.body) {
            Ok(message) => message,
            Err(e) => {
                warn!(worker = %self.name, error = %e, bytes = delivery.body.len(), "poison message, dead-lettering");
                metrics::JOBS.with_label_values(&["poison"]).inc();
                settle(delivery.dead_letter().await, "dead-letter");
                return;
            }
        };
        let job = message.job().clone();
        let span = info_span!("job", job_id = %job.job_id, model = %job.model, delivery = delivery.delivery_count);
        self.process(job, delivery, shutdown).instrument(span).await;
    }

    async fn process(&self, job: JobV1, delivery: Delivery, shutdown: &CancellationToken) {
        let (attempt, started_at_ms) = match self.claim(&job).await {
            Ok((Claim::Claimed { attempt }, at)) => (attempt, at),
            Ok((Claim::Recreated, at)) => (1, at),
            Ok((Claim::Finished, _)) => {
                info!("job already finished, dropping duplicate delivery");
                metrics::JOBS.with_label_values(&["duplicate"]).inc();
                settle(delivery.ack().await, "ack");
                return;
            }
            Ok((Claim::Leased { worker, until_ms }, _)) => {
                // The holder is alive and renewing; if it dies the coordinator
                // re-publishes the job once the lease runs out.
                info!(holder = %worker, until_ms, "job leased by another worker, dropping duplicate delivery");
                metrics::JOBS.with_label_values(&["duplicate"]).inc();
                settle(delivery.ack().await, "ack");
                return;
            }
            Err(e) => {
                warn!(error = %e, "cannot claim job, handing it back");
                pause(self.timings.retry_backoff, shutdown).await;
                self.hand_back(&job, delivery).await;
                return;
            }
        };
        info!(attempt, "evaluating");
        let timer = metrics::JOB_SECONDS.start_timer();
        let outcome = self.evaluate(&job, shutdown).await;
        timer.observe_duration();

        let outcome = match outcome {
            Ok(scores) => Outcome::Completed(scores),
            Err(JobError::Model(reason)) => Outcome::Failed(reason),
            Err(error @ (JobError::Transient { .. } | JobError::Cancelled)) => {
                warn!(%error, "evaluation interrupted, handing the job back");
                metrics::JOBS.with_label_values(&["handed_back"]).inc();
                if let Err(e) = self.store.release(&job.job_id, &self.name).await {
                    // The lease expires on its own; the coordinator reclaims it.
                    warn!(error = %e, "cannot release job");
                }
                if matches!(error, JobError::Transient { .. }) {
                    pause(self.timings.retry_backoff, shutdown).await;
                }
                self.hand_back(&job, delivery).await;
                return;
            }
        };
        let label = match &outcome {
            Outcome::Completed(_) => "completed".to_owned(),
            Outcome::Failed(reason) => format!("failed_{}", reason.code),
        };
        let result = ResultMessage::V1(ResultV1 {
            job_id: job.job_id.clone(),
            profile: job.profile.clone(),
            outcome,
            worker: self.name.clone(),
            attempt,
            started_at_ms,
            finished_at_ms: self.clock.now_ms(),
        });
        match self.store.finish(&result).await {
            Ok(Finish::Recorded) => {
                info!(outcome = %label, "result stored");
                metrics::JOBS.with_label_values(&[&label]).inc();
                settle(delivery.ack().await, "ack");
            }
            Ok(Finish::AlreadyFinished) => {
                info!("another attempt stored a result first, keeping it");
                metrics::JOBS.with_label_values(&["duplicate"]).inc();
                settle(delivery.ack().await, "ack");
            }
            Err(e) => {
                warn!(error = %e, "cannot store the result, handing the job back");
                pause(self.timings.retry_backoff, shutdown).await;
                self.hand_back(&job, delivery).await;
            }
        }
    }

    /// Puts `job` back in the queue as a new message, then acks `delivery`.
    /// A hand-back is the validator's trouble (an outage of the hub, the
    /// store or the judge, a shutdown), so it must not count toward the
    /// queue's delivery limit, which a job reaches only by deliveries lost
    /// with their worker (a crash, a kill, a consumer timeout) and past which
    /// it fails as `delivery_limit`. If the broker takes no new message, the
    /// delivery itself goes back, counted.
    async fn hand_back(&self, job: &JobV1, delivery: Delivery) {
        match self.queue.publish(&JobMessage::V1(job.clone())).await {
            Ok(()) => settle(delivery.ack().await, "ack"),
            Err(e) => {
                warn!(error = %e, "cannot queue the job again, returning its delivery");
                settle(delivery.retry().await, "retry");
            }
        }
    }

    /// Claims `job` at the store's time (read again first if the last reading is old);
    /// returns the claim and that time.
    async fn claim(&self, job: &JobV1) -> Result<(Claim, u64), StoreError> {
        self.clock.refresh(&*self.store).await?;
        let now = self.clock.now_ms();
        let lease = Lease {
            worker: &self.name,
            from_ms: now,
            length: self.timings.lease,
        };
        let claim = self.store.claim(job, lease).await?;
        Ok((claim, now))
    }

    /// Fetch and evaluate under the deadline, with a heartbeat alongside.
    async fn evaluate(
        &self,
        job: &JobV1,
        shutdown: &CancellationToken,
    ) -> Result<Scores, JobError> {
        if job.profile != self.profile.version {
            return Err(FailureReason::new(
                FailureCode::InvalidJob,
                format!(
                    "job asks for profile `{}`, this worker runs `{}`",
                    job.profile, self.profile.version
                ),
            )
            .into());
        }
        let cancel = shutdown.child_token();
        let (progress, mut progress_rx) = Progress::new();
        let heartbeat = {
            let (store, id, name, cancel, clock) = (
                self.store.clone(),
                job.job_id.clone(),
                self.name.clone(),
                cancel.clone(),
                self.clock.clone(),
            );
            let timings = self.timings;
            async move {
                let mut tick = tokio::time::interval(timings.heartbeat);
                tick.tick().await;
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        _ = tick.tick() => {}
                        changed = progress_rx.changed() => if changed.is_err() { return },
                    }
                    let fraction = *progress_rx.borrow_and_update();
                    let lease = Lease {
                        worker: &name,
                        from_ms: clock.now_ms(),
                        length: timings.lease,
                    };
                    match store.heartbeat(&id, lease, fraction).await {
                        Ok(true) => {}
                        Ok(false) => {
                            warn!("lease lost, cancelling the evaluation");
                            cancel.cancel();
                            return;
                        }
                        Err(e) => warn!(error = %e, "heartbeat failed, will retry"),
                    }
                }
            }
        };
        let work = async {
            let model = self
                .source
                .fetch(&job.model, self.profile.max_model_bytes)
                .await?;
            progress.set(0.05);
            let evaluation = self
                .evaluator
                .evaluate(EvalTask {
                    job,
                    model: &model,
                    profile: &self.profile,
                    progress: progress.clone(),
                    cancel: cancel.clone(),
                })
                .await?;
            if !evaluation.components.is_well_formed() {
                return Err(JobError::Model(FailureReason::new(
                    FailureCode::NanOutput,
                    format!(
                        "the model produced out-of-range scores {:?}",
                        evaluation.components
                    ),
                )));
            }
            metrics::TOKENS.inc_by(evaluation.tokens);
            Ok(Scores {
                total: self.profile.total(&evaluation.components),
                components: evaluation.components,
                weights_fingerprint: model.weights_fingerprint,
                dataset_sha256: evaluation.dataset_sha256,
                revision_sha: model.revision_sha,
                tokens: evaluation.tokens,
                samples_context_cut: Some(
                    u32::try_from(evaluation.details.samples_context_cut).unwrap_or(u32::MAX),
                ),
                latency: evaluation.details.latency,
                samples: evaluation.details.samples,
                judge: evaluation.details.judge.map(Box::new),
            })
        };
        let deadline = self.profile.job_deadline;
        let result = tokio::select! {
            result = tokio::time::timeout(deadline, work) => result.unwrap_or_else(|_| {
                Err(FailureReason::new(
                    FailureCode::Timeout,
                    format!("evaluation ran past the {}s deadline", deadline.as_secs()),
                ).into())
            }),
            () = heartbeat => Err(JobError::Cancelled),
        };
        // Stops the evaluator's blocking work if it is still going.
        cancel.cancel();
        if shutdown.is_cancelled() && result.is_err() {
            return Err(JobError::Cancelled);
        }
        result
    }
}

/// Sleeps, unless shutdown comes first.
async fn pause(duration: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}

/// Logs a failed settle: the broker redelivers on its own when a channel is gone.
fn settle(result: Result<(), common::queue::QueueError>, what: &str) {
    if let Err(e) = result {
        warn!(error = %e, settle = what, "could not settle the delivery; the queue will redeliver it");
    }
}
