//! What can go wrong with a job, classified by what the worker does next.

use common::queue::QueueError;
use common::result::FailureReason;
use common::store::StoreError;

/// A job's failure, by consequence:
/// - `Model`: the model's own fault; final, recorded as FAILED, never retried.
/// - `Transient`: the environment's fault (network, store, broker, host
///   memory); the job is handed back and retried, bounded by the queue's
///   delivery limit.
/// - `Cancelled`: the worker is shutting down or lost its lease; the job is
///   handed back untouched.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Model(#[from] FailureReason),
    #[error("transient failure: {0}")]
    Transient(String),
    #[error("cancelled")]
    Cancelled,
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        Self::Transient(e.to_string())
    }
}

impl From<QueueError> for JobError {
    fn from(e: QueueError) -> Self {
        Self::Transient(e.to_string())
    }
}
