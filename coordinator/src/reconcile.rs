//! The one owner of the job lifecycle invariant between the queue and the
//! store: **every job that is not final is either waiting on exactly one
//! message in the queue, or held by a worker under a live lease.**
//!
//! The chain loop ([`crate::service`]) and the operator route
//! (`POST /v1/evaluations`) only *enqueue* in the store; this module is what
//! publishes. One pass ([`Reconciler::run_once`]):
//!
//! 1. **Reclaim**: a RUNNING job whose lease ran out (its worker died or
//!    hangs) goes back to QUEUED with no message — compare-and-set on the
//!    lease it saw, so one expiry gives exactly one new message however many
//!    passes or coordinators see it. A job reclaimed
//!    [`ReconcileSettings::max_reclaims`] times is FAILED `delivery_limit`:
//!    its evaluation killed or hung every worker that started it.
//! 2. **Dead letters**: each message in the dead-letter queue is settled
//!    against its job. A message the workers *rejected* as unreadable fails
//!    its job as `invalid_job`. A message that used up its deliveries (hand-
//!    backs on transient errors and worker restarts, none of them the
//!    model's fault) queues its job again, up to
//!    [`ReconcileSettings::max_requeues`] times, then fails it as
//!    `delivery_limit`. Final, running or unknown jobs only lose the stale
//!    message.
//! 3. **Lost messages**: when the queue is empty (nothing ready, delivered
//!    or dead-lettered) on two passes in a row, a QUEUED job published more
//!    than `publish_stale_after` ago has lost its message (the queue was
//!    purged, or the broker lost it); it is marked for a new one. The loss is
//!    the validator's, so it counts towards no limit: a broker that keeps
//!    losing messages delays a job, never fails it.
//! 4. **Publish**: every QUEUED job with no message outstanding gets one.
//!    The store's `begin_publish` lets one publisher at a time send it (a
//!    publisher that dies mid-way is taken over after
//!    [`ReconcileSettings::publish_stale_after`]); a failed publish is
//!    retried on the next pass — so a broker outage of any length when a
//!    submission arrives strands nothing.
//!
//! Every step is idempotent: running a pass twice, or in two coordinator
//! processes, changes nothing the first did not.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::job::{JobId, JobMessage, JobStatus};
use common::queue::{DeadLetter, DeadLetterReason, JobQueue, QueueError};
use common::result::{FailureCode, FailureReason, Outcome, ResultMessage, ResultV1};
use common::store::{
    ClusterClock, JobRecord, PublishCheck, PublishOutcome, ResultStore, StoreError,
};
use parking_lot::Mutex;
use tracing::{debug, info, warn};

use crate::metrics;

/// The worker name recorded on results the reconciler writes.
pub const RECONCILER: &str = "coordinator";

/// Tunables of the reconciler.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileSettings {
    /// A publish begun this long ago without an end is taken over (its
    /// publisher died between the store and the broker).
    pub publish_stale_after: Duration,
    /// Dead-lettered deliveries of one job queued again before it fails.
    pub max_requeues: u32,
    /// Expired leases of one job reclaimed before it fails.
    pub max_reclaims: u32,
    /// Dead letters settled per pass (the rest wait for the next pass).
    pub dead_letters_per_pass: usize,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            publish_stale_after: Duration::from_secs(120),
            max_requeues: 5,
            max_reclaims: 3,
            dead_letters_per_pass: 100,
        }
    }
}

/// Why a pass stopped early; the next pass carries on.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a pass did, for logs, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Jobs given a message.
    pub published: Vec<JobId>,
    /// Publishes that failed (the job is tried again on the next pass).
    pub publish_failures: usize,
    /// Expired leases taken back.
    pub reclaimed: Vec<JobId>,
    /// Dead-lettered jobs queued again.
    pub requeued: Vec<JobId>,
    /// Jobs failed by the reconciler, with the code.
    pub failed: Vec<(JobId, FailureCode)>,
    /// Dead letters settled (including stale ones that changed nothing).
    pub dead_letters: usize,
    /// Jobs whose message was gone from an empty queue, published again.
    pub lost: Vec<JobId>,
}

impl ReconcileReport {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct Reconciler {
    store: Arc<dyn ResultStore>,
    queue: Arc<dyn JobQueue>,
    settings: ReconcileSettings,
    /// The store's time, which workers stamp their leases with.
    clock: ClusterClock,
    /// QUEUED jobs (with their publication) whose message the last pass
    /// found missing from an empty queue.
    lost_sightings: Arc<Mutex<HashSet<(JobId, u64)>>>,
}

common::debug_fields!(Reconciler { settings });

impl Reconciler {
    pub fn new(
        store: Arc<dyn ResultStore>,
        queue: Arc<dyn JobQueue>,
        settings: ReconcileSettings,
    ) -> Self {
        Self {
            store,
            queue,
            settings,
            clock: ClusterClock::default(),
            lost_sightings: Arc::default(),
        }
    }

    /// One pass: reclaim, settle dead letters, publish. Stops at the first
    /// store or queue outage; what it did until then is kept.
    pub async fn run_once(&self) -> Result<ReconcileReport, ReconcileError> {
        let mut report = ReconcileReport::default();
        let result = self.pass(&mut report).await;
        record_metrics(&report);
        result.map(|()| report)
    }

    async fn pass(&self, report: &mut ReconcileReport) -> Result<(), ReconcileError> {
        self.clock.refresh(&*self.store).await?;
        self.reclaim_expired(report).await?;
        let broker_away = match self.settle_dead_letters(report).await {
            // Publishing below fails too, and is counted.
            Err(ReconcileError::Queue(e)) => {
                warn!(error = %e, "cannot read dead letters");
                true
            }
            other => {
                other?;
                false
            }
        };
        // Read before listing the jobs: a message published before this read
        // is counted in it, unless a worker has claimed its job since.
        let queue_empty = !broker_away && self.queue.depth().await.is_ok_and(|d| d.is_empty());
        let mut queued = self.store.jobs_with_status(JobStatus::Queued).await?;
        self.requeue_lost(queue_empty, &mut queued, report).await?;
        let check = self.publish_check();
        queued.retain(|r| r.needs_publish(check));
        metrics::JOBS_UNPUBLISHED.set(queued.len() as i64);
        for record in &queued {
            self.publish(record, report).await?;
        }
        Ok(())
    }

    /// The queue holds no message at all, yet these QUEUED jobs had one
    /// published more than `publish_stale_after` ago and no worker claimed
    /// it: the queue was purged, or the broker lost it (a restart without
    /// durable storage). A job seen so on two passes in a row, with the same
    /// publication, is marked for a new message, which this pass publishes.
    /// Two sightings, because a worker handing a job back releases it in the
    /// store a moment before its message returns to the queue; a single
    /// sighting in that moment would only cost a duplicate message, which
    /// the claim turns away.
    async fn requeue_lost(
        &self,
        queue_empty: bool,
        queued: &mut [JobRecord],
        report: &mut ReconcileReport,
    ) -> Result<(), ReconcileError> {
        let stale_before = self
            .clock
            .now_ms()
            .saturating_sub(self.settings.publish_stale_after.as_millis() as u64);
        let sighted: HashSet<(JobId, u64)> = if queue_empty {
            queued
                .iter()
                .filter_map(|r| {
                    let published_at = r.published_at_ms.filter(|t| *t < stale_before)?;
                    Some((r.job.job_id.clone(), published_at))
                })
                .collect()
        } else {
            HashSet::new()
        };
        let seen_before = std::mem::replace(&mut *self.lost_sightings.lock(), sighted.clone());
        for record in queued.iter_mut() {
            let Some(published_at) = record.published_at_ms else {
                continue;
            };
            let key = (record.job.job_id.clone(), published_at);
            if !(sighted.contains(&key) && seen_before.contains(&key)) {
                continue;
            }
            if self
                .store
                .requeue_lost(&record.job.job_id, published_at)
                .await?
            {
                warn!(
                    job_id = %record.job.job_id,
                    published_at_ms = published_at,
                    why = "the queue was purged, or the broker lost it",
                    "message lost; publishing the job again"
                );
                report.lost.push(record.job.job_id.clone());
                // As the store now has it.
                record.published_at_ms = None;
                record.publishing_since_ms = None;
                record.lost_messages += 1;
            }
        }
        Ok(())
    }

    /// Publishes the job `id` if it is QUEUED with no message outstanding
    /// (the operator route, right after enqueueing it).
    pub async fn publish_if_needed(
        &self,
        id: &JobId,
        report: &mut ReconcileReport,
    ) -> Result<(), ReconcileError> {
        self.clock.refresh(&*self.store).await?;
        match self.store.get(id).await? {
            Some(record) if record.needs_publish(self.publish_check()) => {
                self.publish(&record, report).await
            }
            _ => Ok(()),
        }
    }

    /// Now, and when an unfinished publish is taken for abandoned.
    fn publish_check(&self) -> PublishCheck {
        PublishCheck {
            now_ms: self.clock.now_ms(),
            stale_after: self.settings.publish_stale_after,
        }
    }

    /// Sends `record`'s job a message, if the store admits this publisher
    /// (one at a time across processes). A broker outage is recorded in
    /// `report` and left to the next pass; only a store outage is an error.
    async fn publish(
        &self,
        record: &JobRecord,
        report: &mut ReconcileReport,
    ) -> Result<(), ReconcileError> {
        let id = &record.job.job_id;
        let Some(attempt) = self.store.begin_publish(id, self.publish_check()).await? else {
            return Ok(());
        };
        let message = JobMessage::V1(record.job.clone());
        match self.queue.publish(&message).await {
            Ok(()) => {
                let at_ms = self.clock.now_ms();
                self.store
                    .end_publish(id, attempt, PublishOutcome::Confirmed { at_ms })
                    .await?;
                // Publishes this job should have needed: one, plus one per
                // reclaim, requeue or lost message. Any attempt beyond failed
                // earlier: this one repairs a job that was stranded without a message.
                let expected = 1 + record.reclaims + record.requeues + record.lost_messages;
                let label = if attempt == 1 {
                    "new"
                } else if attempt > expected {
                    metrics::RECONCILER_REPAIRS
                        .with_label_values(&["stranded"])
                        .inc();
                    "stranded"
                } else {
                    "republished"
                };
                metrics::JOBS_PUBLISHED.with_label_values(&[label]).inc();
                info!(job_id = %id, attempt, model = %record.job.model, why = label, "job published");
                report.published.push(id.clone());
                Ok(())
            }
            Err(e) => {
                warn!(job_id = %id, attempt, error = %e, "publish failed; the next pass retries it");
                report.publish_failures += 1;
                self.store
                    .end_publish(id, attempt, PublishOutcome::Failed)
                    .await?;
                Ok(())
            }
        }
    }

    async fn reclaim_expired(&self, report: &mut ReconcileReport) -> Result<(), ReconcileError> {
        let now = self.clock.now_ms();
        for record in self.store.jobs_with_status(JobStatus::Running).await? {
            let Some(lease) = record
                .lease_expires_at_ms
                .filter(|_| record.lease_expired(now))
            else {
                continue;
            };
            if record.reclaims >= self.settings.max_reclaims {
                let reason = format!(
                    "the evaluation was started {} times and its worker stopped responding \
                     each time (the model may exhaust the worker's memory)",
                    record.attempts
                );
                self.fail(&record, FailureCode::DeliveryLimit, reason, report)
                    .await?;
                continue;
            }
            if self.store.reclaim(&record.job.job_id, lease, now).await? {
                warn!(
                    job_id = %record.job.job_id,
                    worker = ?record.worker,
                    attempts = record.attempts,
                    "lease expired, job taken back for a new worker"
                );
                report.reclaimed.push(record.job.job_id.clone());
            }
        }
        Ok(())
    }

    async fn settle_dead_letters(
        &self,
        report: &mut ReconcileReport,
    ) -> Result<(), ReconcileError> {
        for _ in 0..self.settings.dead_letters_per_pass {
            let Some(dead) = self.queue.next_dead_letter().await? else {
                break;
            };
            match self.settle_dead_letter(&dead, report).await {
                Ok(()) => {
                    report.dead_letters += 1;
                    if let Err(e) = dead.delivery.ack().await {
                        // Settled in the store already; seeing it again is harmless.
                        warn!(error = %e, "acking a dead letter failed");
                    }
                }
                Err(e) => {
                    let _ = dead.delivery.retry().await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn settle_dead_letter(
        &self,
        dead: &DeadLetter,
        report: &mut ReconcileReport,
    ) -> Result<(), ReconcileError> {
        let message = match JobMessage::decode(&dead.delivery.body) {
            Ok(message) => message,
            Err(e) => {
                warn!(error = %e, bytes = dead.delivery.body.len(), reason = dead.reason.as_str(), "dropping an undecodable dead letter");
                return Ok(());
            }
        };
        let id = message.id();
        let Some(record) = self.store.get(id).await? else {
            debug!(job_id = %id, "dead letter of an unknown job; dropped");
            return Ok(());
        };
        if record.status != JobStatus::Queued {
            // Final: nothing to do. RUNNING: a worker holds it under a lease,
            // and the reclaim step covers it if that worker dies.
            debug!(job_id = %id, status = %record.status, "stale dead letter; dropped");
            return Ok(());
        }
        match &dead.reason {
            DeadLetterReason::Rejected => {
                let reason = "the validator's workers could not read this job's message \
                     (a worker older than the coordinator?); not a fault of the model: \
                     the validator must re-run it";
                self.fail(&record, FailureCode::InvalidJob, reason.into(), report)
                    .await
            }
            DeadLetterReason::DeliveryLimit | DeadLetterReason::Other(_) => {
                if record.requeues >= self.settings.max_requeues {
                    let reason = format!(
                        "gave up after {} deliveries in {} rounds without a result \
                         (every worker handed the job back)",
                        record.attempts,
                        record.requeues + 1
                    );
                    return self
                        .fail(&record, FailureCode::DeliveryLimit, reason, report)
                        .await;
                }
                let Some(published_at) = record.published_at_ms else {
                    // Already waiting for a new message.
                    return Ok(());
                };
                if self.store.requeue(id, published_at).await? {
                    info!(
                        job_id = %id,
                        reason = dead.reason.as_str(),
                        requeues = record.requeues + 1,
                        why = "its deliveries ran out on hand-backs, not on a fault of the model",
                        "dead-lettered job queued again"
                    );
                    report.requeued.push(id.clone());
                }
                Ok(())
            }
        }
    }

    async fn fail(
        &self,
        record: &JobRecord,
        code: FailureCode,
        message: String,
        report: &mut ReconcileReport,
    ) -> Result<(), ReconcileError> {
        let now = self.clock.now_ms();
        let result = ResultMessage::V1(ResultV1 {
            job_id: record.job.job_id.clone(),
            profile: record.job.profile.clone(),
            outcome: Outcome::Failed(FailureReason::new(code, message.clone())),
            worker: RECONCILER.into(),
            attempt: record.attempts,
            started_at_ms: record.started_at_ms.unwrap_or(now),
            finished_at_ms: now,
        });
        self.store.finish(&result).await?;
        warn!(job_id = %record.job.job_id, %code, reason = %message, "job failed by the reconciler");
        report.failed.push((record.job.job_id.clone(), code));
        Ok(())
    }
}

fn record_metrics(report: &ReconcileReport) {
    let count = |n: usize| n as u64;
    let repairs = [
        ("reclaimed", report.reclaimed.len()),
        ("requeued", report.requeued.len()),
        ("failed", report.failed.len()),
        ("lost", report.lost.len()),
        ("publish_failed", report.publish_failures),
    ];
    for (action, n) in repairs {
        metrics::RECONCILER_REPAIRS
            .with_label_values(&[action])
            .inc_by(count(n));
    }
    metrics::DEAD_LETTERS_SETTLED.inc_by(count(report.dead_letters));
}
