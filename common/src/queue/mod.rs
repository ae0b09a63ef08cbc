//! The job queue between the coordinator and the workers (docs/architecture.md §5).
//!
//! # Guarantees every implementation gives
//! - **At-least-once**: a published job is delivered until a consumer acks it.
//!   A delivery that is dropped without being settled (consumer crashed,
//!   channel closed) is delivered again. Consumers therefore make every effect
//!   idempotent; the store's `finish` is.
//! - **Durable publish**: `publish` returns only once the queue holds the job.
//! - **Bounded retries**: after `delivery_limit` deliveries a message goes to
//!   the dead-letter queue instead of looping forever.
//! - **Cancel-safe receive**: dropping the future of [`JobQueue::next_delivery`]
//!   loses nothing, so a worker can `select!` it against shutdown.
//! - **Dead letters are readable**: [`JobQueue::next_dead_letter`] hands the
//!   coordinator's reconciler each dead-lettered message with the reason the
//!   queue gave, so no job is left waiting on a message that is gone.
//!
//! [`MemoryQueue`] backs the embedded mode; RabbitMQ backs the cluster
//! (module `rabbitmq`, feature `rabbitmq`).

mod memory;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

use std::sync::Arc;

use async_trait::async_trait;

pub use self::memory::MemoryQueue;
#[cfg(feature = "rabbitmq")]
pub use self::rabbitmq::{RabbitConfig, RabbitQueue};
use crate::job::JobMessage;

/// The job queue's name when none is configured (its dead-letter exchange
/// and queue add `.dlx` and `.dead`).
pub const DEFAULT_QUEUE: &str = "eval.jobs";

/// Queue failures. All of them are transient from the caller's view: the
/// broker is away and the operation may be retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// `message` is the whole text (a cause's text included); `source` is the
    /// broker client's error, when there is one.
    #[error("job queue unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
}

impl QueueError {
    /// Unavailable, for a reason with no underlying error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// Unavailable because of `source`, whose text is the message.
    pub fn caused_by(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable {
            message: source.to_string(),
            source: Some(Arc::new(source)),
        }
    }
}

/// How many jobs wait and run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueDepth {
    /// Waiting for a worker.
    pub ready: u64,
    /// Delivered to a worker, not yet acknowledged.
    pub in_flight: u64,
    /// Waiting in the dead-letter queue for the reconciler.
    pub dead_lettered: u64,
}

impl QueueDepth {
    /// No message anywhere: none waiting, none delivered, none dead-lettered.
    pub fn is_empty(&self) -> bool {
        self.ready == 0 && self.in_flight == 0 && self.dead_lettered == 0
    }
}

/// The queue as the coordinator and workers use it.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Publishes a job; returns once the queue holds it durably.
    async fn publish(&self, job: &JobMessage) -> Result<(), QueueError>;

    /// Waits for the next job. Cancel-safe.
    async fn next_delivery(&self) -> Result<Delivery, QueueError>;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// Takes the oldest dead-lettered message without waiting; `None` when
    /// there is none. Settle it: `ack` removes it for good, `retry` puts it
    /// back in the dead-letter queue (and dropping it unsettled does too).
    async fn next_dead_letter(&self) -> Result<Option<DeadLetter>, QueueError>;
}

/// Why a message was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// It was delivered `delivery_limit` times without being acked.
    DeliveryLimit,
    /// A consumer refused it as unprocessable ([`Delivery::dead_letter`]).
    Rejected,
    /// Another reason the broker gave (expired, queue length limit, …).
    Other(String),
}

impl DeadLetterReason {
    pub fn as_str(&self) -> &str {
        match self {
            Self::DeliveryLimit => "delivery_limit",
            Self::Rejected => "rejected",
            Self::Other(other) => other,
        }
    }
}

/// A message taken from the dead-letter queue.
#[derive(Debug)]
pub struct DeadLetter {
    pub delivery: Delivery,
    pub reason: DeadLetterReason,
}

/// How a delivery is settled; implemented by each queue.
#[async_trait]
pub trait Settle: Send + Sync + std::fmt::Debug {
    /// Done: the job's outcome is durably stored.
    async fn ack(self: Box<Self>) -> Result<(), QueueError>;
    /// Failed this time: deliver again (counts toward the delivery limit).
    async fn retry(self: Box<Self>) -> Result<(), QueueError>;
    /// Unprocessable: move to the dead-letter queue now.
    async fn dead_letter(self: Box<Self>) -> Result<(), QueueError>;
}

/// One delivery of a job message.
#[derive(Debug)]
pub struct Delivery {
    /// The raw body: decoding is the consumer's job, so a poison message can
    /// be dead-lettered instead of crashing anything.
    pub body: Vec<u8>,
    /// 1 for the first delivery of this message, 2 for the next…
    pub delivery_count: u32,
    settle: Box<dyn Settle>,
}

impl Delivery {
    pub fn new(body: Vec<u8>, delivery_count: u32, settle: Box<dyn Settle>) -> Self {
        Self {
            body,
            delivery_count,
            settle,
        }
    }

    pub async fn ack(self) -> Result<(), QueueError> {
        self.settle.ack().await
    }

    pub async fn retry(self) -> Result<(), QueueError> {
        self.settle.retry().await
    }

    pub async fn dead_letter(self) -> Result<(), QueueError> {
        self.settle.dead_letter().await
    }
}
