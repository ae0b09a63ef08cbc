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
//!
//! [`MemoryStore`] backs the embedded mode; Redis backs the cluster (module
//! `redis`, feature `redis`, which documents the key schema).

mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use self::redis::{RedisConfig, RedisStore};
use crate::job::{JobId, JobStatus, JobV1};
use crate::result::{Outcome, ResultMessage, ResultV1};

/// Store failures: the store is unreachable; retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("result store unavailable: {0}")]
    Unavailable(String),
    #[error("result store holds undecodable data for {key}: {message}")]
    Corrupt { key: String, message: String },
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
    /// Set once the job is final.
    pub result: Option<ResultV1>,
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
        }
    }

    /// The total score, when the job completed.
    pub fn total(&self) -> Option<f64> {
        match &self.result.as_ref()?.outcome {
            Outcome::Completed(scores) => Some(scores.total),
            Outcome::Failed(_) => None,
        }
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

/// The store as the coordinator and workers use it. Times are unix ms passed
/// in by the caller, so tests control the clock.
#[async_trait]
pub trait ResultStore: Send + Sync + 'static {
    /// Records `job` as QUEUED unless it is known.
    async fn enqueue(&self, job: &JobV1) -> Result<Enqueued, StoreError>;

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Starts an attempt by `worker`, leased until `now_ms + lease`.
    async fn claim(
        &self,
        job: &JobV1,
        worker: &str,
        lease: Duration,
        now_ms: u64,
    ) -> Result<Claim, StoreError>;

    /// Reports progress and renews the lease. `false`: the job is no longer
    /// this worker's (finished elsewhere, or reclaimed).
    async fn heartbeat(
        &self,
        id: &JobId,
        worker: &str,
        progress: f64,
        lease: Duration,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Hands a job back (shutdown, transient failure): QUEUED again, lease dropped.
    async fn release(&self, id: &JobId, worker: &str) -> Result<(), StoreError>;

    /// Records a final result; atomic and idempotent.
    async fn finish(&self, result: &ResultMessage) -> Result<Finish, StoreError>;

    /// Every job with the given status.
    async fn jobs_with_status(&self, status: JobStatus) -> Result<Vec<JobRecord>, StoreError>;

    /// Completed jobs by total score, best first.
    async fn leaderboard(&self, limit: usize) -> Result<Vec<RankedJob>, StoreError>;
}
