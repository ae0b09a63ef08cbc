//! The RabbitMQ queue against a real broker (`AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`): the contract suite plus fault
//! tests. Every test declares its own queues (random suffix) and deletes them.
//!
//! `broker_restart_loses_nothing` stops and starts the local broker's app with
//! `rabbitmqctl` (loopback only); it takes the broker lock exclusively so the
//! other tests of this binary wait for it. Skip it with `-- --skip restart`
//! where other users share the broker.
//!
//! Run with `cargo test --workspace --features common/rabbitmq,common/redis,common/testsuite --test integration rabbitmq::`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::job::JobMessage;
use common::queue::testsuite::job;
use common::queue::{Delivery, JobQueue, RabbitConfig, RabbitQueue};
use common::store::{Claim, Finish, Lease, MemoryStore, ResultStore};
use parking_lot::Mutex;
use tokio::sync::{RwLock, RwLockReadGuard};

use common::testsuite::unique_name;

use crate::support::init_tracing;

/// Shared by every test; the restart test holds it exclusively.
static BROKER: RwLock<()> = RwLock::const_new(());

fn config(name: &str, delivery_limit: u32) -> RabbitConfig {
    let queue = unique_name(name);
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    RabbitConfig {
        delivery_limit,
        ..RabbitConfig::for_queue(url, &queue, format!("test-{name}"))
    }
}

async fn queue(name: &str, delivery_limit: u32) -> RabbitQueue {
    init_tracing();
    RabbitQueue::connect(config(name, delivery_limit))
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (start it with `rabbitmq-server -detached`)")
}

/// [`queue`] for a test that holds the broker shared while the guard lives,
/// so that the restart test waits for it.
async fn shared_queue(
    name: &str,
    delivery_limit: u32,
) -> (RwLockReadGuard<'static, ()>, RabbitQueue) {
    let broker = BROKER.read().await;
    (broker, queue(name, delivery_limit).await)
}

async fn next(queue: &RabbitQueue) -> Delivery {
    tokio::time::timeout(Duration::from_secs(30), queue.next_delivery())
        .await
        .expect("a delivery within 30 s")
        .expect("queue available")
}

async fn assert_empty(queue: &RabbitQueue) {
    let waited = tokio::time::timeout(Duration::from_millis(500), queue.next_delivery()).await;
    assert!(waited.is_err(), "expected no delivery");
}

/// Polls until `read` returns `expected` (brokers report counts lazily).
async fn eventually<F, Fut>(expected: u64, mut read: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let mut seen = read().await;
    for _ in 0..100 {
        if seen == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = read().await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_suite() {
    let _broker = BROKER.read().await;
    let made: Arc<Mutex<Vec<RabbitQueue>>> = Arc::default();
    let registry = made.clone();
    common::queue::testsuite::run(move |limit| {
        let registry = registry.clone();
        async move {
            let queue = queue("contract", limit).await;
            registry.lock().push(queue.clone());
            queue
        }
    })
    .await;
    let queues = made.lock().clone();
    for queue in queues {
        queue.delete_topology().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_exhausted_messages_reach_the_dead_letter_queue() {
    let (_broker, queue) = shared_queue("poison", 2).await;

    // A body no worker can decode is dead-lettered at once.
    queue.publish_raw(b"not json", "poison-1").await.unwrap();
    let delivery = next(&queue).await;
    assert!(JobMessage::decode(&delivery.body).is_err());
    assert_eq!(delivery.delivery_count, 1);
    delivery.dead_letter().await.unwrap();
    assert_eq!(
        eventually(1, || async { queue.dead_letter_depth().await.unwrap() }).await,
        1
    );

    // A job that fails every delivery goes there after `delivery_limit` of them.
    queue.publish(&job("retried")).await.unwrap();
    for expected in 1..=2 {
        let delivery = next(&queue).await;
        assert_eq!(delivery.delivery_count, expected);
        delivery.retry().await.unwrap();
    }
    assert_empty(&queue).await;
    assert_eq!(
        eventually(2, || async { queue.dead_letter_depth().await.unwrap() }).await,
        2
    );

    // What arrived there is the original body.
    let bodies = drain_dead_letters(queue.config()).await;
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], b"not json");
    assert_eq!(JobMessage::decode(&bodies[1]).unwrap(), job("retried"));
    queue.delete_topology().await.unwrap();
}

/// Reads (and acks) everything in the dead-letter queue with a plain lapin channel.
async fn drain_dead_letters(config: &RabbitConfig) -> Vec<Vec<u8>> {
    use lapin::options::{BasicAckOptions, BasicGetOptions};
    let connection =
        lapin::Connection::connect(config.url.expose(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut bodies = Vec::new();
    while let Some(message) = channel
        .basic_get(
            config.dead_letter_queue.as_str().into(),
            BasicGetOptions::default(),
        )
        .await
        .unwrap()
    {
        message.acker.ack(BasicAckOptions::default()).await.unwrap();
        bodies.push(message.delivery.data.clone());
    }
    let _ = connection.close(200, "OK".into()).await;
    bodies
}

/// How a worker handles one delivery: claim, finish, ack.
async fn work(store: &MemoryStore, delivery: Delivery) -> Option<Finish> {
    let message = JobMessage::decode(&delivery.body).unwrap();
    let job = message.job();
    let outcome = match store
        .claim(job, Lease::new("w1", 1_000, Duration::from_secs(60)))
        .await
        .unwrap()
    {
        Claim::Claimed { .. } | Claim::Recreated => {
            let result = common::store::testsuite::completed(job, 0.5, "w1");
            Some(store.finish(&result).await.unwrap())
        }
        Claim::Finished => None,
        Claim::Leased { .. } => panic!("nobody else holds it"),
    };
    delivery.ack().await.unwrap();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_a_job_twice_is_harmless() {
    let (_broker, queue) = shared_queue("dup", 3).await;
    let store = MemoryStore::new();
    let j = job("dup");
    store.enqueue(j.job()).await.unwrap();
    queue.publish(&j).await.unwrap();
    queue.publish(&j).await.unwrap();
    let first = work(&store, next(&queue).await).await;
    let second = work(&store, next(&queue).await).await;
    assert_eq!(first, Some(Finish::Recorded));
    assert_eq!(second, None, "the second delivery finds the job finished");
    assert_empty(&queue).await;
    assert_eq!(store.leaderboard(10).await.unwrap().len(), 1);
    queue.delete_topology().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_delivery_comes_back() {
    let (_broker, queue) = shared_queue("dropped", 5).await;
    queue.publish(&job("dropped")).await.unwrap();
    let first = next(&queue).await;
    assert_eq!(first.delivery_count, 1);
    drop(first);
    let again = next(&queue).await;
    assert_eq!(JobMessage::decode(&again.body).unwrap(), job("dropped"));
    assert_eq!(again.delivery_count, 2);
    again.ack().await.unwrap();
    assert_empty(&queue).await;
    queue.delete_topology().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_deleted_behind_our_back_is_redeclared() {
    let (_broker, queue) = shared_queue("redeclare", 3).await;
    // An operator deletes the queue while we are connected.
    let other = RabbitQueue::connect(queue.config().clone()).await.unwrap();
    other.delete_topology().await.unwrap();
    // The next publish is returned unroutable, redeclares, and goes through.
    queue.publish(&job("after")).await.unwrap();
    let delivery = next(&queue).await;
    assert_eq!(JobMessage::decode(&delivery.body).unwrap(), job("after"));
    delivery.ack().await.unwrap();
    assert_eq!(queue.depth().await.unwrap().ready, 0);
    queue.delete_topology().await.unwrap();
}

async fn rabbitmqctl(args: &[&str]) {
    let status = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .expect("rabbitmqctl is installed");
    assert!(status.success(), "rabbitmqctl {args:?} failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_nothing() {
    let _broker = BROKER.write().await;
    let config = RabbitConfig {
        operation_timeout: Duration::from_secs(120),
        ..config("restart", 5)
    };
    init_tracing();
    let queue = RabbitQueue::connect(config).await.unwrap();
    for name in ["a1", "a2", "a3"] {
        queue.publish(&job(name)).await.unwrap();
    }
    // One delivery in flight when the broker goes away.
    let held = next(&queue).await;
    assert_eq!(JobMessage::decode(&held.body).unwrap(), job("a1"));

    rabbitmqctl(&["stop_app"]).await;
    // Its ack cannot land: the caller is told, the broker redelivers it.
    assert!(held.ack().await.is_err());
    // A publish during the outage waits for the broker and then lands.
    let publisher = queue.clone();
    let during = tokio::spawn(async move { publisher.publish(&job("b1")).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]).await;
    rabbitmqctl(&["await_startup"]).await;
    during
        .await
        .unwrap()
        .expect("publish during the outage lands");

    // The same queue object consumes again and sees every message.
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    while seen.len() < 4 {
        let delivery = tokio::time::timeout(Duration::from_secs(60), queue.next_delivery())
            .await
            .expect("deliveries resume after the restart")
            .expect("queue available");
        let name = JobMessage::decode(&delivery.body)
            .unwrap()
            .job()
            .model
            .name
            .clone();
        *seen.entry(name).or_default() += 1;
        delivery.ack().await.unwrap();
    }
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["a1", "a2", "a3", "b1"]
    );
    assert_empty(&queue).await;
    queue.delete_topology().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_limit_of_one_never_redelivers() {
    let (_broker, queue) = shared_queue("limit1", 1).await;
    queue.publish(&job("once")).await.unwrap();
    next(&queue).await.retry().await.unwrap();
    assert_empty(&queue).await;
    assert_eq!(
        eventually(1, || async { queue.dead_letter_depth().await.unwrap() }).await,
        1
    );
    queue.delete_topology().await.unwrap();
}
