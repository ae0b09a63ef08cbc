//! Job state and results (docs/architecture.md §6).
//!
//! # Guarantees every implementation gives
//! - `enqueue` is idempotent: the first call creates a QUEUED record, later
//!   calls return the existing one unchanged.
//! - `claim` hands a job to one worker at a time under a **lease**: while the
//!   lease is live, another claim is refused, so a job redelivered by the
//!   broker (consumer timeout, reconnect) never runs twice at once. Workers
//!   renew the lease with their progress reports; the coordinator re-publishes
//!   jobs whose lease expired (the worker died).
//! - `finish` is atomic and idempotent: result, status and leaderboard change
//!   together, once. A second `finish` of the same job changes nothing and
//!   reports [`Finish::AlreadyFinished`].
//! - Every status change follows [`crate::job::TRANSITIONS`]; a change the
//!   table does not allow is refused, never half-applied.
//! - **Per-sample records are kept apart.** `finish` stores the records of a
//!   completed result ([`crate::result::Scores::samples`]) beside the job,
//!   atomically with it; `get` and the listings return the result without
//!   them (the coordinator's status index reads every record every second,
//!   and the records are tens of kilobytes a job), and [`ResultStore::samples`]
//!   returns them.
//! - **Publication bookkeeping** for the coordinator's reconciler: a QUEUED
//!   job either has a message outstanding (`published_at_ms`) or does not.
//!   `begin_publish` lets one publisher at a time (across processes) send
//!   its message; `reclaim` and `requeue` are compare-and-set on the lease or
//!   publication they saw, so two reconcilers never both act on one expiry.
//!
//! [`MemoryStore`] backs the embedded mode; Redis backs the cluster (module
//! `redis`, feature `redis`, which documents the key schema).

mod clock;
mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::clock::ClusterClock;
pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use self::redis::{RedisConfig, RedisStore};
use crate::job::{JobId, JobStatus, JobV1};
use crate::result::{Outcome, ResultMessage, ResultV1, SampleRecord};

/// What a store call returns.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Store failures: the store is unreachable; retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// `message` is the whole text (a cause's text included); `source` is the
    /// client's error, when there is one.
    #[error("result store unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    #[error("result store holds undecodable data for {key}: {message}")]
    Corrupt { key: String, message: String },
}

impl StoreError {
    /// Unavailable, for a reason with no underlying error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// Unavailable because of `source`: the message reads `"{context}: {source}"`.
    pub fn unavailable_from(
        context: impl std::fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable {
            message: format!("{context}: {source}"),
            source: Some(Arc::new(source)),
        }
    }
}

/// Everything known about one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: JobV1,
    pub status: JobStatus,
    /// Claims so far (1 once the first worker started it).
    pub attempts: u32,
    pub worker: Option<String>,
    pub queued_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    pub lease_expires_at_ms: Option<u64>,
    /// Fraction done while RUNNING, in `[0, 1]`.
    pub progress: f64,
    /// Set once the job is final; without its per-sample records
    /// ([`ResultStore::samples`] has them).
    pub result: Option<ResultV1>,
    /// When the broker confirmed the message the job waits on; `None` while
    /// QUEUED means no message is outstanding and the reconciler sends one.
    #[serde(default)]
    pub published_at_ms: Option<u64>,
    /// Publishes started so far (by any coordinator).
    #[serde(default)]
    pub publish_attempts: u32,
    /// A publish in progress since then (see [`ResultStore::begin_publish`]).
    #[serde(default)]
    pub publishing_since_ms: Option<u64>,
    /// Expired leases taken back by the reconciler.
    #[serde(default)]
    pub reclaims: u32,
    /// Times the reconciler queued the job again after its message was
    /// dead-lettered (its deliveries ran out); bounded by `max_requeues`.
    #[serde(default)]
    pub requeues: u32,
    /// Times the reconciler queued the job again because the broker lost its
    /// message (a purge, a restart without durable storage). The validator's
    /// trouble, so it counts towards no limit.
    #[serde(default)]
    pub lost_messages: u32,
}

impl JobRecord {
    pub fn queued(job: &JobV1) -> Self {
        Self {
            job: job.clone(),
            status: JobStatus::Queued,
            attempts: 0,
            worker: None,
            queued_at_ms: job.queued_at_ms,
            started_at_ms: None,
            finished_at_ms: None,
            lease_expires_at_ms: None,
            progress: 0.0,
            result: None,
            published_at_ms: None,
            publish_attempts: 0,
            publishing_since_ms: None,
            reclaims: 0,
            requeues: 0,
            lost_messages: 0,
        }
    }

    /// The total score, when the job completed.
    pub fn total(&self) -> Option<f64> {
        match &self.result.as_ref()?.outcome {
            Outcome::Completed(scores) => Some(scores.total),
            Outcome::Failed(_) => None,
        }
    }

    /// QUEUED with no message outstanding and no publish in progress (or
    /// one that went stale: its publisher died).
    pub fn needs_publish(&self, check: PublishCheck) -> bool {
        self.status == JobStatus::Queued
            && self.published_at_ms.is_none()
            && self
                .publishing_since_ms
                .is_none_or(|since| check.is_stale(since))
    }

    /// RUNNING under a lease that ran out before `now_ms`.
    pub fn lease_expired(&self, now_ms: u64) -> bool {
        self.status == JobStatus::Running && self.lease_expires_at_ms.is_some_and(|t| t < now_ms)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    Created,
    Exists(Box<JobRecord>),
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The job is this worker's, as attempt `attempt`.
    Claimed { attempt: u32 },
    /// The job already has a final result: nothing to do.
    Finished,
    /// Another worker holds a live lease.
    Leased { worker: String, until_ms: u64 },
    /// The store has no such job (e.g. lost with a Redis wipe): the claim
    /// created it, as attempt 1.
    Recreated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Recorded,
    AlreadyFinished,
}

/// A completed job on the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedJob {
    pub job_id: JobId,
    pub total: f64,
}

/// A lease a worker asks for or renews: who holds it, from when (the
/// cluster's time, unix ms) and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease<'a> {
    pub worker: &'a str,
    pub from_ms: u64,
    pub length: Duration,
}

impl<'a> Lease<'a> {
    pub fn new(worker: &'a str, from_ms: u64, length: Duration) -> Self {
        Self {
            worker,
            from_ms,
            length,
        }
    }

    /// Unix ms the lease runs out at.
    pub fn until_ms(&self) -> u64 {
        self.from_ms.saturating_add(millis(self.length))
    }
}

/// The moment a reconciler looks at a job, and how long a publish may stay
/// unfinished before it is taken for abandoned (its publisher died).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishCheck {
    pub now_ms: u64,
    pub stale_after: Duration,
}

impl PublishCheck {
    /// Whether something begun at `since_ms` is older than `stale_after`.
    pub fn is_stale(&self, since_ms: u64) -> bool {
        since_ms.saturating_add(millis(self.stale_after)) < self.now_ms
    }
}

/// How a publish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The broker confirmed the message at `at_ms`: it is outstanding.
    Confirmed { at_ms: u64 },
    /// The broker refused the message or did not answer: the next
    /// reconciler pass tries again.
    Failed,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Sorts records oldest first (ties by job id), the order of every listing.
fn sort_oldest_first(records: &mut [JobRecord]) {
    records.sort_by(|a, b| (a.queued_at_ms, &a.job.job_id).cmp(&(b.queued_at_ms, &b.job.job_id)));
}

/// The first `limit` of `ranked`, best first (ties by job id, so every
/// implementation orders them alike).
fn best_first(mut ranked: Vec<RankedJob>, limit: usize) -> Vec<RankedJob> {
    ranked.sort_by(|a, b| {
        b.total
            .total_cmp(&a.total)
            .then_with(|| a.job_id.cmp(&b.job_id))
    });
    ranked.truncate(limit);
    ranked
}

/// The store as the coordinator and workers use it. Times are unix ms passed
/// in by the caller, so tests control the clock; callers read them from a
/// [`ClusterClock`], so that every machine's times agree with the store's.
#[async_trait]
pub trait ResultStore: Send + Sync + 'static {
    /// The store's own clock, unix ms: the cluster's time ([`ClusterClock`]).
    async fn time_ms(&self) -> Result<u64>;

    /// Records `job` as QUEUED unless it is known.
    async fn enqueue(&self, job: &JobV1) -> Result<Enqueued>;

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>>;

    /// Starts an attempt by `lease.worker`, under `lease`.
    async fn claim(&self, job: &JobV1, lease: Lease<'_>) -> Result<Claim>;

    /// Reports progress and renews the lease. `false`: the job is no longer
    /// this worker's (finished elsewhere, or reclaimed).
    async fn heartbeat(&self, id: &JobId, lease: Lease<'_>, progress: f64) -> Result<bool>;

    /// Hands a job back (shutdown, transient failure): QUEUED again, lease dropped.
    async fn release(&self, id: &JobId, worker: &str) -> Result<()>;

    /// Records a final result; atomic and idempotent. Its per-sample
    /// records are kept apart: see [`ResultStore::samples`].
    async fn finish(&self, result: &ResultMessage) -> Result<Finish>;

    /// The per-sample records of the job's stored result, in sample order.
    /// Empty when the job is unknown, not finished, failed, or completed by
    /// a worker that did not record them.
    async fn samples(&self, id: &JobId) -> Result<Vec<SampleRecord>>;

    /// Starts publishing a job that [`JobRecord::needs_publish`]: records the
    /// attempt and returns its number, or `None` when the job needs no
    /// message (or another publisher holds it).
    async fn begin_publish(&self, id: &JobId, check: PublishCheck) -> Result<Option<u32>>;

    /// Ends publish attempt `attempt`: a confirmed message is recorded as
    /// outstanding; otherwise the next reconciler tries again. A stale
    /// attempt (a later one began) changes nothing.
    async fn end_publish(&self, id: &JobId, attempt: u32, outcome: PublishOutcome) -> Result<()>;

    /// Takes back a RUNNING job whose lease, ending at `lease_expires_at_ms`,
    /// ran out before `now_ms`: QUEUED with no message outstanding. `false`
    /// when the job is no longer in that state (renewed, finished, or
    /// reclaimed by someone else).
    async fn reclaim(&self, id: &JobId, lease_expires_at_ms: u64, now_ms: u64) -> Result<bool>;

    /// Marks the message of a QUEUED job, published at `published_at_ms`, as
    /// dead-lettered (counted in [`JobRecord::requeues`]), so the job is
    /// published again. `false` when the job is no longer in that state.
    async fn requeue(&self, id: &JobId, published_at_ms: u64) -> Result<bool>;

    /// [`ResultStore::requeue`] for a message the broker lost (counted in
    /// [`JobRecord::lost_messages`] instead).
    async fn requeue_lost(&self, id: &JobId, published_at_ms: u64) -> Result<bool>;

    /// Every job that came from the miner `hotkey`, oldest first.
    async fn jobs_of_hotkey(&self, hotkey: &str) -> Result<Vec<JobRecord>>;

    /// Every job with the given status.
    async fn jobs_with_status(&self, status: JobStatus) -> Result<Vec<JobRecord>>;

    /// Completed jobs by total score, best first.
    async fn leaderboard(&self, limit: usize) -> Result<Vec<RankedJob>>;
}
