//! The reconciler on the in-memory queue and store.

use std::sync::Arc;
use std::time::Duration;

use common::job::JobStatus;
use common::queue::{JobQueue, MemoryQueue};
use common::store::testsuite::job;
use common::store::{MemoryStore, ResultStore};
use coordinator::reconcile::{ReconcileSettings, Reconciler};

/// A lost message is the validator's trouble (a purged queue, a broker
/// restarted without its data): however often it happens, the job waits
/// for a new message and is never failed for it, while dead-lettered
/// deliveries keep their own limit.
#[tokio::test]
async fn a_broker_that_keeps_losing_messages_delays_a_job_never_fails_it() {
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::new(3));
    let settings = ReconcileSettings {
        publish_stale_after: Duration::from_millis(20),
        max_requeues: 1,
        ..ReconcileSettings::default()
    };
    let reconciler = Reconciler::new(store.clone(), queue.clone(), settings);
    let lossy = job("lossy");
    store.enqueue(&lossy).await.unwrap();
    assert_eq!(
        reconciler.run_once().await.unwrap().published,
        vec![lossy.job_id.clone()]
    );

    for _ in 0..3 {
        // The broker drops the message without any worker claiming it.
        let delivery = queue.next_delivery().await.unwrap();
        delivery.ack().await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        // Seen missing twice in a row, it is replaced in the second pass.
        assert!(reconciler.run_once().await.unwrap().is_empty());
        let report = reconciler.run_once().await.unwrap();
        assert_eq!(report.lost, vec![lossy.job_id.clone()], "{report:?}");
        assert_eq!(report.published, vec![lossy.job_id.clone()], "{report:?}");
        assert!(report.failed.is_empty(), "{report:?}");
    }

    let record = store.get(&lossy.job_id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.requeues, record.lost_messages),
        (JobStatus::Queued, 0, 3),
        "three losses, more than max_requeues, and still waiting: {record:?}"
    );

    // The losses spent none of `max_requeues`: deliveries that then run out
    // on hand-backs get the job queued again once, and the next time it fails.
    hand_back_every_delivery(&queue).await;
    let report = reconciler.run_once().await.unwrap();
    assert_eq!(report.requeued, vec![lossy.job_id.clone()], "{report:?}");
    assert_eq!(report.published, vec![lossy.job_id.clone()], "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    hand_back_every_delivery(&queue).await;
    let report = reconciler.run_once().await.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let record = store.get(&lossy.job_id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.requeues, record.lost_messages),
        (JobStatus::Failed, 1, 3)
    );
}

/// Hands the one message back until its deliveries run out (the queue's
/// limit is 3) and it is dead-lettered.
async fn hand_back_every_delivery(queue: &MemoryQueue) {
    for _ in 0..3 {
        queue.next_delivery().await.unwrap().retry().await.unwrap();
    }
    assert_eq!(queue.depth().await.unwrap().dead_lettered, 1);
}
