//! What can go wrong with a job, classified by what the worker does next.

use std::error::Error;

use common::queue::QueueError;
use common::result::FailureReason;
use common::store::StoreError;

/// The cause of a transient failure, kept for callers that walk the chain.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

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
    /// `message` is the whole text as logged (the cause's text included, as
    /// `"{context}: {cause}"`); `source` is the cause itself, when there is one.
    #[error("transient failure: {message}")]
    Transient {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    /// A transient failure with no underlying error.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            source: None,
        }
    }

    /// A transient failure caused by `source`: the message reads
    /// `"{context}: {source}"`.
    pub fn transient_from(context: impl std::fmt::Display, source: impl Into<Cause>) -> Self {
        let source = source.into();
        Self::Transient {
            message: format!("{context}: {source}"),
            source: Some(source),
        }
    }

    /// A transient failure that is `source` itself: the message is its text.
    pub fn transient_source(source: impl Into<Cause>) -> Self {
        let source = source.into();
        Self::Transient {
            message: source.to_string(),
            source: Some(source),
        }
    }
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        Self::transient_source(e)
    }
}

impl From<QueueError> for JobError {
    fn from(e: QueueError) -> Self {
        Self::transient_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_read_as_before_and_keep_their_cause() {
        let io = std::io::Error::other("connection reset");
        let error = JobError::transient_from(format_args!("reading {}", "config.json"), io);
        assert_eq!(
            error.to_string(),
            "transient failure: reading config.json: connection reset"
        );
        let cause = error.source().expect("the cause is kept");
        assert_eq!(
            cause.downcast_ref::<std::io::Error>().unwrap().to_string(),
            "connection reset"
        );

        let error = JobError::transient("model inspection task failed");
        assert_eq!(
            error.to_string(),
            "transient failure: model inspection task failed"
        );
        assert!(error.source().is_none());

        let store = StoreError::Corrupt {
            key: "k".into(),
            message: "bad".into(),
        };
        let text = format!("transient failure: {store}");
        let error = JobError::from(store);
        assert_eq!(error.to_string(), text);
        assert!(
            error
                .source()
                .unwrap()
                .downcast_ref::<StoreError>()
                .is_some()
        );
    }
}
