//! The [`JobQueue`] on RabbitMQ (feature `rabbitmq`), with lapin 4.
//!
//! # Topology (declared idempotently on every (re)connect)
//! - `eval.jobs` ([`RabbitConfig::queue`]): a durable **quorum** queue with
//!   `x-queue-type=quorum`, `x-dead-letter-exchange`,
//!   `x-dead-letter-routing-key` and `x-delivery-limit`.
//! - `eval.jobs.dlx` ([`RabbitConfig::dead_letter_exchange`]): a durable direct
//!   exchange, and `eval.jobs.dead` ([`RabbitConfig::dead_letter_queue`]): a
//!   durable quorum queue bound to it. The coordinator's reconciler reads it
//!   with `basic.get` ([`JobQueue::next_dead_letter`]) and settles every job
//!   whose message ends there; the reason comes from the `x-death` header.
//!
//! Queue arguments cannot change once a queue exists (the broker answers a
//! redeclare with other arguments with 406 PRECONDITION_FAILED). When that
//! happens the existing queue is kept as it is, a warning is logged, and the
//! operator changes the tunable through a **policy** instead
//! (`rabbitmqctl set_policy ... '{"delivery-limit": 5}' --apply-to quorum_queues`).
//!
//! # Guarantees (see [`crate::queue`] for the contract)
//! - **Publish** waits for the broker's publisher confirm. Messages are
//!   persistent (`delivery_mode` 2), `mandatory`, JSON, with `message_id` = the
//!   job id. A nacked or unroutable publish is an error (an unroutable one
//!   first redeclares the topology, so a queue deleted behind our back is
//!   recreated and the publish retried).
//! - **Delivery limit**: [`RabbitConfig::delivery_limit`] counts deliveries,
//!   as the trait does; RabbitMQ's `x-delivery-limit` counts *returns* (a
//!   message is dead-lettered when it has been returned more often than the
//!   limit), so the queue is declared with `delivery_limit - 1`. RabbitMQ 3.10
//!   has no default limit; 4.x defaults to 20, which the argument overrides.
//!   Publishing is itself at-least-once: a publish whose confirm was lost is
//!   retried and may put the job on the queue twice, which is harmless because
//!   job ids are content-derived and the store's `claim`/`finish` absorb the
//!   repeat.
//! - **Delivery count** is read from the quorum queue's `x-delivery-count`
//!   header plus one (absent on a first delivery). A message marked
//!   `redelivered` without that header counts as at least its second delivery.
//!   On RabbitMQ 4.3+ the header counts *failed* deliveries only:
//!   `basic.reject` counts, `basic.nack` does not (which is why
//!   [`Settle::retry`] rejects), and 4.3 adds `x-acquired-count` for every
//!   acquisition. That newer header is not used here because its exact
//!   semantics could not be checked against the 3.10 broker available; the
//!   store's `attempts` counter (one per `claim`) is the authoritative count of
//!   attempts on every version, and workers should bound crash loops with it.
//! - **Settling**: `ack`, `retry` = `basic.reject(requeue=true)`, `dead_letter`
//!   = `basic.reject(requeue=false)`. lapin reports `Ok(false)` when the
//!   delivery's channel is gone; that surfaces as [`QueueError::Unavailable`]
//!   so the caller knows its ack did not land (the broker redelivers the
//!   message, and the store's idempotent `finish` absorbs the repeat).
//! - **Dropped deliveries**: lapin does not return a dropped, unsettled
//!   delivery while its channel lives, so the settle handle's `Drop` spawns a
//!   `basic.reject(requeue=true)` on the current tokio runtime. If there is no
//!   runtime any more, the connection is closing and the broker requeues.
//! - **Cancel-safe receive**: the consumer stream lives in the queue behind a
//!   tokio mutex; a delivery taken from the stream is always returned, and a
//!   cancelled `next_delivery` leaves the stream untouched.
//! - **Reconnects**: the module runs its own reconnect loop rather than
//!   lapin's auto-recovery: every operation that meets a closed connection or
//!   channel reconnects with jittered exponential backoff ([`crate::retry`],
//!   capped at [`RabbitConfig::reconnect_max_backoff`]), redeclares the topology,
//!   re-creates its channel (and the consumer, with its prefetch), and gives up
//!   with [`QueueError::Unavailable`] only after
//!   [`RabbitConfig::operation_timeout`]; the next call starts over. Publish,
//!   depth and consumer each have their own channel, so a channel-level error
//!   on one (a 404 on a passive declare, say) never costs the worker its
//!   in-flight delivery. Deliveries unacked when a connection dies are
//!   redelivered by the broker.
//! - **Depth**: `ready` (and `dead_lettered`, of the dead-letter queue) is the
//!   `message_count` of a passive `queue.declare`.
//!   AMQP 0-9-1 has no way to read the unacknowledged count, so `in_flight` is
//!   always 0 here (the management API's `messages_unacknowledged` has it;
//!   KEDA's `protocol: http` mode reads that).
//!
//! # Long jobs and the consumer timeout
//! An evaluation can run for hours, longer than RabbitMQ's default 30-minute
//! `consumer_timeout` for an unacknowledged delivery. The design does not
//! depend on the broker keeping a delivery open:
//! 1. The worker **claims** the job in the result store under a lease and
//!    renews it with its progress heartbeats ([`crate::store::ResultStore`]).
//!    The coordinator re-publishes jobs whose lease expired (worker died), and
//!    a redelivered job whose lease is live is refused by `claim`, so a job
//!    never runs twice at once.
//! 2. The operator raises the consumer timeout above the worker's hard per-job
//!    deadline, so a healthy long job is not interrupted:
//!    - RabbitMQ **3.10–3.12**: only globally, in `rabbitmq.conf`:
//!      `consumer_timeout = 21600000` (ms; 6 h), or `rabbitmqctl eval
//!      'application:set_env(rabbit, consumer_timeout, 21600000).'` at runtime.
//!      When it fires, 3.10 closes the whole channel (PRECONDITION_FAILED).
//!    - RabbitMQ **4.x**: per queue, through a policy (preferred: arguments
//!      cannot change later) `rabbitmqctl set_policy eval-jobs '^eval\.jobs$'
//!      '{"consumer-timeout": 21600000}' --apply-to quorum_queues`, or the
//!      `x-consumer-timeout` queue argument. On 4.3+ it cancels the consumer
//!      instead of closing the channel.
//!
//!    Either way this module notices (stream error or cancellation),
//!    re-subscribes, and reports the late ack as `Unavailable`; the job's
//!    result is already in the store by then, so the redelivery finds it
//!    finished.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{DeadLetter, DeadLetterReason, Delivery, JobQueue, QueueDepth, QueueError, Settle};
use crate::job::JobMessage;
use crate::retry::Delays;
use crate::secret_url::SecretUrl;

/// How to reach the broker and which topology to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitConfig {
    /// `amqp://user:password@host:5672/vhost` (vhost `/` is `%2f`).
    pub url: SecretUrl,
    /// The job queue.
    pub queue: String,
    /// Where messages go after their last delivery or a `dead_letter`.
    pub dead_letter_exchange: String,
    /// The queue bound to the dead-letter exchange.
    pub dead_letter_queue: String,
    /// Deliveries of one message before it is dead-lettered (at least 1).
    pub delivery_limit: u32,
    /// Unacknowledged deliveries per consumer (1: one job at a time per GPU).
    pub prefetch: u16,
    /// Consumer tag, shown in the management UI.
    pub consumer_tag: String,
    /// How long one call keeps reconnecting before it reports the broker
    /// unavailable.
    #[serde(with = "humantime_serde")]
    pub operation_timeout: Duration,
    /// How long one broker round trip (connect, declare, publish confirm) may take.
    #[serde(with = "humantime_serde")]
    pub rpc_timeout: Duration,
    /// The longest pause between reconnect attempts.
    #[serde(with = "humantime_serde")]
    pub reconnect_max_backoff: Duration,
}

impl Default for RabbitConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            queue: super::DEFAULT_QUEUE.into(),
            dead_letter_exchange: "eval.jobs.dlx".into(),
            dead_letter_queue: "eval.jobs.dead".into(),
            delivery_limit: 3,
            prefetch: 1,
            consumer_tag: "eval-worker".into(),
            operation_timeout: Duration::from_secs(60),
            rpc_timeout: Duration::from_secs(15),
            reconnect_max_backoff: Duration::from_secs(5),
        }
    }
}

impl RabbitConfig {
    /// The defaults for queue `queue` at `url`, with its dead-letter exchange
    /// and queue named `<queue>.dlx` and `<queue>.dead`.
    pub fn for_queue(
        url: impl Into<SecretUrl>,
        queue: &str,
        consumer_tag: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            queue: queue.to_owned(),
            dead_letter_exchange: format!("{queue}.dlx"),
            dead_letter_queue: format!("{queue}.dead"),
            consumer_tag: consumer_tag.into(),
            ..Self::default()
        }
    }

    /// Checks what the broker would refuse or what would loop forever.
    pub fn validate(&self) -> Result<(), String> {
        if self.delivery_limit == 0 {
            return Err("rabbitmq.delivery_limit must be at least 1".into());
        }
        if self.prefetch == 0 {
            return Err("rabbitmq.prefetch must be at least 1 (0 means unlimited)".into());
        }
        for (field, name) in [
            ("queue", &self.queue),
            ("dead_letter_exchange", &self.dead_letter_exchange),
            ("dead_letter_queue", &self.dead_letter_queue),
        ] {
            if name.is_empty() || name.len() > 255 || name.starts_with("amq.") {
                return Err(format!(
                    "rabbitmq.{field} `{name}` must be 1 to 255 bytes and not start with `amq.`"
                ));
            }
        }
        if self.queue == self.dead_letter_queue {
            return Err("rabbitmq.dead_letter_queue must differ from rabbitmq.queue".into());
        }
        if self.operation_timeout.is_zero() || self.rpc_timeout.is_zero() {
            return Err("rabbitmq timeouts must be positive".into());
        }
        Ok(())
    }
}

/// What went wrong talking to the broker; every variant is mapped to
/// [`QueueError::Unavailable`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
enum RabbitError {
    #[error("{op} failed: {source}")]
    Broker {
        op: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error("{op} timed out after {after:?}")]
    Timeout { op: &'static str, after: Duration },
    #[error("broker refused job {message_id}: {what}")]
    Refused { message_id: String, what: String },
    #[error("broker returned job {message_id} as unroutable: {what}")]
    Unroutable { message_id: String, what: String },
}

impl RabbitError {
    fn broker(op: &'static str) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Self::Broker { op, source }
    }

    /// The queue (or exchange) does not exist: redeclaring fixes it.
    fn needs_topology(&self) -> bool {
        match self {
            Self::Unroutable { .. } => true,
            Self::Broker { source, .. } => soft_error(source) == Some(AMQPSoftError::NOTFOUND),
            _ => false,
        }
    }
}

impl From<RabbitError> for QueueError {
    fn from(e: RabbitError) -> Self {
        QueueError::caused_by(e)
    }
}

fn soft_error(e: &lapin::Error) -> Option<AMQPSoftError> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => match amqp.kind() {
            AMQPErrorKind::Soft(soft) => Some(soft.clone()),
            AMQPErrorKind::Hard(_) => None,
        },
        _ => None,
    }
}

/// Declares `queue` passively: checks it exists (a 404 closes the channel)
/// and reads its counts, without changing it.
async fn passive_declare(
    channel: &Channel,
    queue: &str,
    timeout: Duration,
) -> Result<lapin::Queue, RabbitError> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    rpc(
        "queue.declare (passive)",
        timeout,
        channel.queue_declare(queue.into(), options, FieldTable::default()),
    )
    .await
}

/// Runs one broker round trip under the configured timeout.
async fn rpc<T>(
    op: &'static str,
    after: Duration,
    fut: impl Future<Output = lapin::Result<T>>,
) -> Result<T, RabbitError> {
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result.map_err(RabbitError::broker(op)),
        Err(_) => Err(RabbitError::Timeout { op, after }),
    }
}

/// Pauses between reconnect attempts: from 100 ms up to the configured cap,
/// jittered ([`crate::retry`]).
fn reconnect_delays(config: &RabbitConfig) -> Delays {
    Delays::new(Duration::from_millis(100), config.reconnect_max_backoff)
}

/// The RabbitMQ job queue. Cheap to clone; clones share the connection and
/// the consumer.
#[derive(Debug, Clone)]
pub struct RabbitQueue {
    inner: Arc<Inner>,
}

struct Inner {
    config: RabbitConfig,
    /// The current connection; replaced when it is no longer connected.
    connection: Mutex<Option<Arc<Connection>>>,
    /// Publisher-confirm channel for `publish`.
    publisher: Mutex<Option<Channel>>,
    /// Channel for passive declares (`depth`), whose 404s close it.
    admin: Mutex<Option<Channel>>,
    /// The consumer; held across the wait in `next_delivery`.
    consumer: Mutex<Option<ConsumerSlot>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitQueue")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

struct ConsumerSlot {
    /// Kept so the consumer's channel lives as long as the stream.
    channel: Channel,
    consumer: Consumer,
}

/// The queue arguments of a quorum queue.
fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

impl RabbitQueue {
    /// Connects, declares the topology and returns the queue. Retries for
    /// up to [`RabbitConfig::operation_timeout`].
    pub async fn connect(config: RabbitConfig) -> Result<Self, QueueError> {
        let queue = Self::lazy(config)?;
        queue
            .inner
            .retrying("connect", || async {
                queue.inner.connection().await.map(drop)
            })
            .await?;
        Ok(queue)
    }

    /// The queue without connecting yet: the first operation connects (and
    /// every later one reconnects as needed). A process that must start
    /// while the broker is away (serving its probes and API) uses this.
    pub fn lazy(config: RabbitConfig) -> Result<Self, QueueError> {
        config.validate().map_err(QueueError::unavailable)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                connection: Mutex::new(None),
                publisher: Mutex::new(None),
                admin: Mutex::new(None),
                consumer: Mutex::new(None),
            }),
        })
    }

    pub fn config(&self) -> &RabbitConfig {
        &self.inner.config
    }

    /// Publishes raw bytes under `message_id`, as a buggy or hostile
    /// publisher could (tests of poison-message handling use it).
    pub async fn publish_raw(&self, body: &[u8], message_id: &str) -> Result<(), QueueError> {
        self.inner
            .retrying("publish", || self.inner.publish_once(body, message_id))
            .await
    }

    /// Messages waiting in the dead-letter queue.
    pub async fn dead_letter_depth(&self) -> Result<u64, QueueError> {
        let name = &self.inner.config.dead_letter_queue;
        self.inner
            .retrying("dead-letter depth", || self.inner.message_count(name))
            .await
    }

    /// Deletes the job queue, the dead-letter queue and the dead-letter
    /// exchange (tests and decommissioning), then closes the connection.
    pub async fn delete_topology(&self) -> Result<(), QueueError> {
        let inner = &self.inner;
        let timeout = inner.config.rpc_timeout;
        // Stop consuming first, so the deletes do not race a delivery.
        inner.consumer.lock().await.take();
        inner
            .retrying("delete topology", || async {
                let connection = inner.connection().await?;
                let channel = rpc("channel.open", timeout, connection.create_channel()).await?;
                for queue in [&inner.config.queue, &inner.config.dead_letter_queue] {
                    rpc(
                        "queue.delete",
                        timeout,
                        channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()),
                    )
                    .await?;
                }
                rpc(
                    "exchange.delete",
                    timeout,
                    channel.exchange_delete(
                        inner.config.dead_letter_exchange.as_str().into(),
                        ExchangeDeleteOptions::default(),
                    ),
                )
                .await?;
                let _ = channel.close(200, "OK".into()).await;
                Ok(())
            })
            .await?;
        self.close().await;
        Ok(())
    }

    /// Closes the connection. Unsettled deliveries go back to the queue.
    /// Waits for a concurrent `next_delivery` to return or be cancelled, so
    /// cancel that first (a worker's shutdown does).
    pub async fn close(&self) {
        let inner = &self.inner;
        inner.consumer.lock().await.take();
        inner.publisher.lock().await.take();
        inner.admin.lock().await.take();
        if let Some(connection) = inner.connection.lock().await.take()
            && connection.status().connected()
        {
            let closing = connection.close(200, "OK".into());
            if let Err(e) = tokio::time::timeout(inner.config.rpc_timeout, closing).await {
                debug!(error = %e, "rabbitmq close timed out");
            }
        }
    }
}

impl Inner {
    /// Runs `attempt` until it succeeds, its error is final, or
    /// `operation_timeout` has passed, reconnecting in between.
    async fn retrying<T, F, Fut>(&self, op: &'static str, mut attempt: F) -> Result<T, QueueError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RabbitError>>,
    {
        let deadline = Instant::now() + self.config.operation_timeout;
        let mut backoff = reconnect_delays(&self.config);
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if let RabbitError::Refused { .. } = error {
                return Err(error.into());
            }
            self.recover(&error).await;
            let delay = backoff.next_delay();
            if Instant::now() + delay > deadline {
                warn!(op, error = %error, "rabbitmq unavailable, giving up for now");
                return Err(error.into());
            }
            warn!(op, error = %error, retry_in_ms = delay.as_millis() as u64, "rabbitmq operation failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Repairs what an error says is broken: a hung connection is dropped, a
    /// missing queue is redeclared. Closed connections and channels are
    /// noticed (and replaced) by the next attempt on their own.
    async fn recover(&self, error: &RabbitError) {
        if let RabbitError::Timeout { .. } = error {
            // A round trip that hangs means a dead socket that heartbeats
            // have not noticed yet: start over on a new connection.
            if let Some(connection) = self.connection.lock().await.take() {
                warn!("dropping an unresponsive rabbitmq connection");
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        connection.close(320, "unresponsive".into()),
                    )
                    .await;
                });
            }
        } else if error.needs_topology() {
            match self.connection().await {
                Ok(connection) => {
                    if let Err(e) = self.declare_topology(&connection).await {
                        warn!(error = %e, "redeclaring the rabbitmq topology failed");
                    }
                }
                Err(e) => debug!(error = %e, "no connection to redeclare the topology on"),
            }
        }
    }

    /// The live connection, connecting (and declaring the topology) if needed.
    async fn connection(&self) -> Result<Arc<Connection>, RabbitError> {
        let mut current = self.connection.lock().await;
        if let Some(connection) = current.as_ref()
            && connection.status().connected()
        {
            return Ok(connection.clone());
        }
        current.take();
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from(self.config.consumer_tag.as_str()));
        let connection = rpc(
            "connect",
            self.config.rpc_timeout,
            Connection::connect(self.config.url.expose(), properties),
        )
        .await?;
        self.declare_topology(&connection).await?;
        info!(
            url = %self.config.url,
            queue = %self.config.queue,
            "connected to rabbitmq"
        );
        let connection = Arc::new(connection);
        *current = Some(connection.clone());
        Ok(connection)
    }

    /// A live channel from `slot`, opened with `setup` if needed.
    async fn channel<F, Fut>(
        &self,
        slot: &Mutex<Option<Channel>>,
        setup: F,
    ) -> Result<Channel, RabbitError>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: Future<Output = Result<Channel, RabbitError>>,
    {
        let mut current = slot.lock().await;
        if let Some(channel) = current.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        current.take();
        let connection = self.connection().await?;
        let channel = rpc(
            "channel.open",
            self.config.rpc_timeout,
            connection.create_channel(),
        )
        .await?;
        let channel = setup(channel).await?;
        *current = Some(channel.clone());
        Ok(channel)
    }

    async fn declare_topology(&self, connection: &Connection) -> Result<(), RabbitError> {
        let config = &self.config;
        let timeout = config.rpc_timeout;
        let channel = rpc("channel.open", timeout, connection.create_channel()).await?;
        rpc(
            "exchange.declare",
            timeout,
            channel.exchange_declare(
                config.dead_letter_exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        self.declare_queue(connection, &config.dead_letter_queue, quorum_args())
            .await?;
        rpc(
            "queue.bind",
            timeout,
            channel.queue_bind(
                config.dead_letter_queue.as_str().into(),
                config.dead_letter_exchange.as_str().into(),
                config.dead_letter_queue.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        let mut args = quorum_args();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(config.dead_letter_exchange.as_str().into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(config.dead_letter_queue.as_str().into()),
        );
        // x-delivery-limit counts returns, the config counts deliveries.
        let returns = i64::from(config.delivery_limit.saturating_sub(1));
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(returns));
        self.declare_queue(connection, &config.queue, args).await?;
        let _ = channel.close(200, "OK".into()).await;
        Ok(())
    }

    /// Declares a durable queue; one that exists with other arguments is kept.
    async fn declare_queue(
        &self,
        connection: &Connection,
        name: &str,
        args: FieldTable,
    ) -> Result<(), RabbitError> {
        let timeout = self.config.rpc_timeout;
        let channel = rpc("channel.open", timeout, connection.create_channel()).await?;
        let declared = rpc(
            "queue.declare",
            timeout,
            channel.queue_declare(
                name.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            ),
        )
        .await;
        match declared {
            Ok(_) => {
                let _ = channel.close(200, "OK".into()).await;
                Ok(())
            }
            Err(RabbitError::Broker { source, .. })
                if soft_error(&source) == Some(AMQPSoftError::PRECONDITIONFAILED) =>
            {
                // The 406 closed that channel; check the queue exists on another.
                warn!(
                    queue = name,
                    error = %source,
                    "queue exists with other arguments; keeping them (change tunables with a policy)"
                );
                let channel = rpc("channel.open", timeout, connection.create_channel()).await?;
                passive_declare(&channel, name, timeout).await?;
                let _ = channel.close(200, "OK".into()).await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn publish_once(&self, body: &[u8], message_id: &str) -> Result<(), RabbitError> {
        let timeout = self.config.rpc_timeout;
        let channel = self
            .channel(&self.publisher, |channel| async move {
                rpc(
                    "confirm.select",
                    timeout,
                    channel.confirm_select(ConfirmSelectOptions::default()),
                )
                .await?;
                Ok(channel)
            })
            .await?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(message_id));
        let confirm = rpc(
            "basic.publish",
            timeout,
            channel.basic_publish(
                "".into(),
                self.config.queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            ),
        )
        .await?;
        match rpc("publisher confirm", timeout, confirm).await? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(RabbitError::Unroutable {
                message_id: message_id.to_owned(),
                what: format!("{} {}", returned.reply_code, returned.reply_text),
            }),
            Confirmation::Nack(_) => Err(RabbitError::Refused {
                message_id: message_id.to_owned(),
                what: "the broker nacked the publish".into(),
            }),
            Confirmation::NotRequested => Err(RabbitError::Refused {
                message_id: message_id.to_owned(),
                what: "publisher confirms are not enabled on the channel".into(),
            }),
        }
    }

    async fn message_count(&self, queue: &str) -> Result<u64, RabbitError> {
        let channel = self
            .channel(&self.admin, |channel| async { Ok(channel) })
            .await?;
        let declared = passive_declare(&channel, queue, self.config.rpc_timeout).await?;
        Ok(u64::from(declared.message_count()))
    }

    /// Opens a consumer channel with the prefetch and subscribes.
    async fn subscribe(&self) -> Result<ConsumerSlot, RabbitError> {
        let timeout = self.config.rpc_timeout;
        let connection = self.connection().await?;
        let channel = rpc("channel.open", timeout, connection.create_channel()).await?;
        rpc(
            "basic.qos",
            timeout,
            channel.basic_qos(self.config.prefetch, BasicQosOptions::default()),
        )
        .await?;
        let consumer = rpc(
            "basic.consume",
            timeout,
            channel.basic_consume(
                self.config.queue.as_str().into(),
                self.config.consumer_tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        info!(queue = %self.config.queue, prefetch = self.config.prefetch, "consuming");
        Ok(ConsumerSlot { channel, consumer })
    }
}

/// The delivery number of a message: the quorum queue's count of earlier
/// returns plus one.
fn delivery_count(properties: &BasicProperties, redelivered: bool) -> u32 {
    let returns = properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("x-delivery-count"))
        .and_then(|value| match value {
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongUInt(n) => Some(*n),
            AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
            AMQPValue::ShortShortInt(n) => u32::try_from(*n).ok(),
            AMQPValue::ShortShortUInt(n) => Some(u32::from(*n)),
            _ => None,
        });
    match returns {
        Some(n) => n.saturating_add(1),
        None if redelivered => 2,
        None => 1,
    }
}

#[async_trait]
impl JobQueue for RabbitQueue {
    async fn publish(&self, job: &JobMessage) -> Result<(), QueueError> {
        let body = job.encode();
        let id = job.id().to_string();
        self.inner
            .retrying("publish", || self.inner.publish_once(&body, &id))
            .await
            .inspect_err(|e| warn!(job_id = %id, error = %e, "publish failed"))
    }

    async fn next_delivery(&self) -> Result<Delivery, QueueError> {
        let inner = &self.inner;
        // Held across the wait: the stream is only ever polled by one caller,
        // and cancelling this future leaves it (and its buffer) in place.
        let mut slot = inner.consumer.lock().await;
        let mut broken_since: Option<Instant> = None;
        let mut backoff = reconnect_delays(&inner.config);
        loop {
            let Some(current) = slot.as_mut() else {
                match inner.subscribe().await {
                    Ok(subscribed) => {
                        *slot = Some(subscribed);
                        backoff = reconnect_delays(&inner.config);
                    }
                    Err(error) => {
                        inner.recover(&error).await;
                        let since = *broken_since.get_or_insert_with(Instant::now);
                        let delay = backoff.next_delay();
                        if since.elapsed() + delay > inner.config.operation_timeout {
                            warn!(error = %error, "rabbitmq consumer unavailable, giving up for now");
                            return Err(error.into());
                        }
                        warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "subscribing failed, retrying");
                        tokio::time::sleep(delay).await;
                    }
                }
                continue;
            };
            match current.consumer.next().await {
                Some(Ok(delivery)) => {
                    let lapin::message::Delivery {
                        delivery_tag,
                        redelivered,
                        properties,
                        data,
                        acker,
                        ..
                    } = delivery;
                    let count = delivery_count(&properties, redelivered);
                    let message_id = properties
                        .message_id()
                        .as_ref()
                        .map(|id| id.to_string())
                        .unwrap_or_default();
                    debug!(job_id = %message_id, delivery_tag, delivery_count = count, "delivery");
                    let settle = RabbitSettle {
                        acker: Some(acker),
                        message_id,
                        timeout: inner.config.rpc_timeout,
                    };
                    return Ok(Delivery::new(data, count, Box::new(settle)));
                }
                Some(Err(error)) => {
                    warn!(error = %error, "rabbitmq consumer failed, re-subscribing");
                    broken_since.get_or_insert_with(Instant::now);
                    slot.take();
                }
                None => {
                    warn!(
                        channel_id = current.channel.id(),
                        "rabbitmq consumer cancelled, re-subscribing"
                    );
                    broken_since.get_or_insert_with(Instant::now);
                    slot.take();
                }
            }
        }
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let ready = self
            .inner
            .retrying("depth", || {
                self.inner.message_count(&self.inner.config.queue)
            })
            .await?;
        let dead_lettered = self.dead_letter_depth().await?;
        Ok(QueueDepth {
            ready,
            in_flight: 0,
            dead_lettered,
        })
    }

    async fn next_dead_letter(&self) -> Result<Option<DeadLetter>, QueueError> {
        let inner = &self.inner;
        let got = inner
            .retrying("dead-letter get", || async {
                let channel = inner
                    .channel(&inner.admin, |channel| async { Ok(channel) })
                    .await?;
                rpc(
                    "basic.get",
                    inner.config.rpc_timeout,
                    channel.basic_get(
                        inner.config.dead_letter_queue.as_str().into(),
                        BasicGetOptions { no_ack: false },
                    ),
                )
                .await
            })
            .await?;
        let Some(got) = got else {
            return Ok(None);
        };
        let lapin::message::Delivery {
            properties,
            data,
            acker,
            ..
        } = got.delivery;
        let reason = dead_letter_reason(&properties);
        let message_id = properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default();
        let settle = RabbitSettle {
            acker: Some(acker),
            message_id,
            timeout: inner.config.rpc_timeout,
        };
        Ok(Some(DeadLetter {
            delivery: Delivery::new(data, 1, Box::new(settle)),
            reason,
        }))
    }
}

/// The reason of the latest dead-lettering in the `x-death` header
/// (RabbitMQ puts the most recent first): `delivery_limit` for a quorum
/// queue's delivery limit, `rejected` for `basic.reject(requeue=false)`.
fn dead_letter_reason(properties: &BasicProperties) -> DeadLetterReason {
    let reason = properties
        .headers()
        .as_ref()
        .and_then(|headers| match headers.inner().get("x-death") {
            Some(AMQPValue::FieldArray(deaths)) => deaths.as_slice().first().cloned(),
            _ => None,
        })
        .and_then(|death| match death {
            AMQPValue::FieldTable(table) => match table.inner().get("reason") {
                Some(AMQPValue::LongString(reason)) => Some(reason.to_string()),
                Some(AMQPValue::ShortString(reason)) => Some(reason.to_string()),
                _ => None,
            },
            _ => None,
        });
    match reason.as_deref() {
        Some("delivery_limit") => DeadLetterReason::DeliveryLimit,
        Some("rejected") => DeadLetterReason::Rejected,
        Some(other) => DeadLetterReason::Other(other.to_owned()),
        None => DeadLetterReason::Other("unknown".into()),
    }
}

/// Settles one RabbitMQ delivery. Dropped unsettled, it requeues it.
struct RabbitSettle {
    /// `None` once settled.
    acker: Option<Acker>,
    message_id: String,
    timeout: Duration,
}

impl fmt::Debug for RabbitSettle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitSettle")
            .field("message_id", &self.message_id)
            .field("settled", &self.acker.is_none())
            .finish()
    }
}

impl RabbitSettle {
    async fn settle(
        &mut self,
        what: &'static str,
        requeue: Option<bool>,
    ) -> Result<(), QueueError> {
        let Some(acker) = self.acker.take() else {
            return Ok(());
        };
        let settled = match requeue {
            None => rpc(what, self.timeout, acker.ack(BasicAckOptions::default())).await,
            Some(requeue) => {
                rpc(
                    what,
                    self.timeout,
                    acker.reject(BasicRejectOptions { requeue }),
                )
                .await
            }
        };
        match settled {
            Ok(true) => Ok(()),
            Ok(false) => {
                warn!(job_id = %self.message_id, what, "delivery's channel is gone; the broker will redeliver");
                Err(QueueError::unavailable(format!(
                    "{what} of job {} not sent: its channel is closed; the broker redelivers it",
                    self.message_id
                )))
            }
            Err(error) => {
                warn!(job_id = %self.message_id, what, error = %error, "settling failed; the broker will redeliver");
                Err(error.into())
            }
        }
    }
}

#[async_trait]
impl Settle for RabbitSettle {
    async fn ack(mut self: Box<Self>) -> Result<(), QueueError> {
        self.settle("basic.ack", None).await
    }

    async fn retry(mut self: Box<Self>) -> Result<(), QueueError> {
        self.settle("basic.reject (requeue)", Some(true)).await
    }

    async fn dead_letter(mut self: Box<Self>) -> Result<(), QueueError> {
        self.settle("basic.reject (dead-letter)", Some(false)).await
    }
}

impl Drop for RabbitSettle {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        if !acker.usable() {
            // The channel is gone: the broker has requeued it already.
            return;
        }
        let message_id = std::mem::take(&mut self.message_id);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    match acker.reject(BasicRejectOptions { requeue: true }).await {
                        Ok(true) => debug!(job_id = %message_id, "dropped delivery requeued"),
                        Ok(false) => {
                            debug!(job_id = %message_id, "dropped delivery's channel is gone; the broker requeues it");
                        }
                        Err(error) => {
                            warn!(job_id = %message_id, error = %error, "requeueing a dropped delivery failed");
                        }
                    }
                });
            }
            Err(_) => warn!(
                job_id = %message_id,
                "delivery dropped outside a tokio runtime; it returns when the connection closes"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: AMQPValue) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert("x-delivery-count".into(), value);
        BasicProperties::default().with_headers(headers)
    }

    #[test]
    fn delivery_count_from_headers() {
        assert_eq!(delivery_count(&BasicProperties::default(), false), 1);
        assert_eq!(delivery_count(&BasicProperties::default(), true), 2);
        assert_eq!(
            delivery_count(&with_header(AMQPValue::LongLongInt(1)), true),
            2
        );
        assert_eq!(delivery_count(&with_header(AMQPValue::LongInt(4)), true), 5);
        assert_eq!(
            delivery_count(&with_header(AMQPValue::LongLongInt(-3)), true),
            2
        );
        assert_eq!(
            delivery_count(&with_header(AMQPValue::LongString("x".into())), false),
            1
        );
    }

    #[test]
    fn config_validation() {
        assert!(RabbitConfig::default().validate().is_ok());
        for bad in [
            RabbitConfig {
                delivery_limit: 0,
                ..RabbitConfig::default()
            },
            RabbitConfig {
                prefetch: 0,
                ..RabbitConfig::default()
            },
            RabbitConfig {
                queue: "amq.jobs".into(),
                ..RabbitConfig::default()
            },
            RabbitConfig {
                dead_letter_queue: "eval.jobs".into(),
                ..RabbitConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let debug = format!(
            "{:?}",
            RabbitConfig {
                url: "amqp://u:hunter2@h/%2f".into(),
                ..RabbitConfig::default()
            }
        );
        assert!(!debug.contains("hunter2"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        // Nominal 100, 200, 300, 300 ms; jitter takes each into [half, all].
        let config = RabbitConfig {
            reconnect_max_backoff: Duration::from_millis(300),
            ..RabbitConfig::default()
        };
        for _ in 0..100 {
            let mut backoff = reconnect_delays(&config);
            for nominal in [100, 200, 300, 300] {
                let delay = backoff.next_delay().as_secs_f64() * 1000.0;
                assert!(delay <= f64::from(nominal), "{delay} ms above {nominal} ms");
                assert!(
                    delay >= f64::from(nominal) / 2.0 - 0.01,
                    "{delay} ms below half of {nominal} ms"
                );
            }
        }
    }
}
