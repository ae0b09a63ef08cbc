//! The contract every [`JobQueue`] honours, run against each implementation
//! (in memory here, RabbitMQ in the worker's integration tests).

use std::future::Future;
use std::time::Duration;

use super::{DeadLetterReason, JobQueue, QueueDepth};
use crate::job::JobMessage;

/// A job message naming model `name`.
pub fn job(name: &str) -> JobMessage {
    crate::testsuite::job_message(name, 0)
}

async fn next<Q: JobQueue>(queue: &Q) -> super::Delivery {
    tokio::time::timeout(Duration::from_secs(10), queue.next_delivery())
        .await
        .expect("a delivery within 10 s")
        .expect("queue available")
}

async fn assert_empty<Q: JobQueue>(queue: &Q) {
    let waited = tokio::time::timeout(Duration::from_millis(300), queue.next_delivery()).await;
    assert!(waited.is_err(), "expected no delivery");
}

/// Runs the suite. `make` builds a fresh, empty queue with the given delivery
/// limit each time it is called.
pub async fn run<Q, F, Fut>(make: F)
where
    Q: JobQueue,
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Q>,
{
    // Publish, deliver, ack: delivered once, then gone.
    let queue = make(3).await;
    queue.publish(&job("a")).await.unwrap();
    let delivery = next(&queue).await;
    assert_eq!(JobMessage::decode(&delivery.body).unwrap(), job("a"));
    assert_eq!(delivery.delivery_count, 1);
    delivery.ack().await.unwrap();
    assert_empty(&queue).await;

    // Retry redelivers with a higher count; the limit dead-letters.
    let queue = make(2).await;
    queue.publish(&job("b")).await.unwrap();
    let first = next(&queue).await;
    first.retry().await.unwrap();
    let second = next(&queue).await;
    assert_eq!(second.delivery_count, 2);
    second.retry().await.unwrap();
    assert_empty(&queue).await;
    // …and is handed to the reconciler as a dead letter with its reason;
    // `retry` keeps it there, `ack` removes it. Depth counts it meanwhile.
    let depth = wait_for(&queue, |d| d.dead_lettered == 1).await;
    assert_eq!((depth.ready, depth.dead_lettered), (0, 1), "{depth:?}");
    let dead = next_dead(&queue).await;
    assert_eq!(dead.reason, DeadLetterReason::DeliveryLimit);
    assert_eq!(JobMessage::decode(&dead.delivery.body).unwrap(), job("b"));
    dead.delivery.retry().await.unwrap();
    let dead = next_dead(&queue).await;
    assert_eq!(JobMessage::decode(&dead.delivery.body).unwrap(), job("b"));
    dead.delivery.ack().await.unwrap();
    assert!(queue.next_dead_letter().await.unwrap().is_none());
    assert!(wait_for(&queue, |d| d.is_empty()).await.is_empty());

    // An unsettled delivery that is dropped comes back.
    let queue = make(5).await;
    queue.publish(&job("c")).await.unwrap();
    drop(next(&queue).await);
    let again = next(&queue).await;
    assert_eq!(JobMessage::decode(&again.body).unwrap(), job("c"));
    assert!(again.delivery_count >= 2);
    again.ack().await.unwrap();

    // Dead-lettering removes the message at once.
    let queue = make(5).await;
    queue.publish(&job("d")).await.unwrap();
    next(&queue).await.dead_letter().await.unwrap();
    assert_empty(&queue).await;
    let dead = next_dead(&queue).await;
    assert_eq!(dead.reason, DeadLetterReason::Rejected);
    dead.delivery.ack().await.unwrap();

    // Depth counts ready messages; order is FIFO.
    let queue = make(5).await;
    for name in ["e1", "e2", "e3"] {
        queue.publish(&job(name)).await.unwrap();
    }
    let depth = wait_for(&queue, |d| d.ready == 3).await;
    assert_eq!((depth.ready, depth.dead_lettered), (3, 0), "{depth:?}");
    for name in ["e1", "e2", "e3"] {
        let d = next(&queue).await;
        assert_eq!(JobMessage::decode(&d.body).unwrap(), job(name));
        d.ack().await.unwrap();
    }

    // A receive cancelled before anything arrived loses nothing.
    let queue = make(5).await;
    assert_empty(&queue).await;
    queue.publish(&job("f")).await.unwrap();
    let d = next(&queue).await;
    assert_eq!(JobMessage::decode(&d.body).unwrap(), job("f"));
    d.ack().await.unwrap();
}

/// Brokers dead-letter asynchronously: poll briefly.
async fn next_dead<Q: JobQueue>(queue: &Q) -> super::DeadLetter {
    for _ in 0..50 {
        if let Some(dead) = queue.next_dead_letter().await.unwrap() {
            return dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected a dead letter within 5 s");
}

/// Brokers report depth asynchronously: polls briefly until `settled`, and
/// returns the last depth read.
async fn wait_for<Q: JobQueue>(queue: &Q, settled: impl Fn(&QueueDepth) -> bool) -> QueueDepth {
    let mut depth = queue.depth().await.unwrap();
    for _ in 0..50 {
        if settled(&depth) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        depth = queue.depth().await.unwrap();
    }
    depth
}
