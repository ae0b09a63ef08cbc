//! The coordinator loop against the in-memory chain, queue and store.

use std::sync::Arc;
use std::time::Duration;

use common::chain::MemoryChain;
use common::chain_weights::U16Weights;
use common::clock::now_ms;
use common::job::{JobId, JobMessage, JobStatus};
use common::queue::{JobQueue, MemoryQueue};
use common::store::testsuite::claim_and_complete;
use common::store::{Lease, MemoryStore, ResultStore};
use common::submission::CommitString;
use coordinator::leaderboard::model_of;
use coordinator::service::{Coordinator, LoopSettings};
use coordinator::view::SharedView;

fn settings() -> LoopSettings {
    LoopSettings::new("v1", 10, Duration::from_millis(10))
}

struct Setup {
    chain: Arc<MemoryChain>,
    queue: Arc<MemoryQueue>,
    store: Arc<MemoryStore>,
    coordinator: Coordinator,
}

fn setup(miners: usize) -> (Setup, Vec<JobId>) {
    let chain = Arc::new(MemoryChain::new(100, "5Val", 10));
    chain.register("5Val", true);
    let mut ids = Vec::new();
    for i in 0..miners {
        let hotkey = format!("5M{i}");
        chain.register(&hotkey, false);
        let commit = CommitString::bound_to("ns", format!("m{i}"), "chatml", &hotkey, None);
        chain
            .commit(&hotkey, commit.to_string().as_bytes())
            .unwrap();
        ids.push(JobId::for_model(&model_of(&commit), "v1"));
        chain.advance(1);
    }
    let queue = Arc::new(MemoryQueue::new(5));
    let store = Arc::new(MemoryStore::new());
    let coordinator = Coordinator::new(
        chain.clone(),
        queue.clone(),
        store.clone(),
        settings(),
        SharedView::default(),
    );
    (
        Setup {
            chain,
            queue,
            store,
            coordinator,
        },
        ids,
    )
}

#[tokio::test]
async fn schedules_each_model_once_and_sets_weights_on_cadence() {
    let (mut s, ids) = setup(3);
    let report = s.coordinator.tick().await.unwrap();
    assert_eq!(report.valid, 3);
    assert_eq!(report.reconciled.published.len(), 3);
    assert!(report.aggregated);
    // Nothing scored yet: no weights.
    assert!(s.chain.weights_history().is_empty());

    // A second tick publishes nothing new, and it is not time to aggregate.
    let report = s.coordinator.tick().await.unwrap();
    assert!(report.reconciled.published.is_empty() && !report.aggregated);
    assert_eq!(s.queue.depth().await.unwrap().ready, 3);

    // Re-committing the identical string reuses the job.
    let commit = CommitString::bound_to("ns", "m0", "chatml", "5M0", None);
    s.chain
        .commit("5M0", commit.to_string().as_bytes())
        .unwrap();
    assert!(
        s.coordinator
            .tick()
            .await
            .unwrap()
            .reconciled
            .published
            .is_empty()
    );

    for (id, total) in ids.iter().zip([0.5, 0.9, 0.7]) {
        claim_and_complete(s.store.as_ref(), id, total).await;
    }
    s.chain.advance(10);
    let report = s.coordinator.tick().await.unwrap();
    assert!(report.aggregated);
    let (_, set) = s.chain.weights_history().last().cloned().unwrap();
    // uid 2 (0.9) beats both; uid 3 (0.7) beats uid 1 (0.5, re-committed later).
    // Win rates 1, 0.5, 0: uid 1's softmax share rounds to 0 and is dropped.
    assert_eq!(set.uids, vec![2, 3]);
    assert_eq!(set.weights.iter().max(), Some(&u16::MAX));
    let view = s.coordinator.view.read();
    assert_eq!(view.weights.set.as_ref(), Some(&set));
    assert_eq!(view.leaderboard.entries[0].uid, 2);
}

#[tokio::test]
async fn refused_weights_are_reported_and_dry_run_sets_nothing() {
    let (mut s, ids) = setup(1);
    s.coordinator.tick().await.unwrap();
    claim_and_complete(s.store.as_ref(), &ids[0], 0.5).await;
    s.chain.advance(10);
    s.coordinator.tick().await.unwrap();
    assert_eq!(s.chain.weights_history().len(), 1);
    // The chain's rate limit refuses an early second set; the view says why.
    let verdicts = s.coordinator.view.read().verdicts;
    s.coordinator.aggregate(0, &verdicts).await.unwrap();
    let status = s.coordinator.view.read().weights;
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("SettingWeightsTooFast"),
        "{status:?}"
    );
    assert_eq!(s.chain.weights_history().len(), 1);

    s.coordinator.settings.dry_run = true;
    s.chain.advance(100);
    s.coordinator.aggregate(0, &verdicts).await.unwrap();
    assert_eq!(s.chain.weights_history().len(), 1);
    assert_eq!(
        s.coordinator.view.read().weights.computed,
        Some(U16Weights {
            uids: vec![1],
            weights: vec![65535]
        })
    );
}

#[tokio::test]
async fn expired_leases_are_reclaimed_and_a_wiped_store_is_refilled() {
    let (mut s, ids) = setup(2);
    s.coordinator.tick().await.unwrap();
    // Drain the queue as if a worker took both jobs; one worker dies mid-job.
    for _ in 0..2 {
        s.queue.next_delivery().await.unwrap().ack().await.unwrap();
    }
    let dead = s.store.get(&ids[0]).await.unwrap().unwrap().job;
    s.store
        .claim(
            &dead,
            Lease::new("dead-worker", now_ms(), Duration::from_millis(1)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = s.coordinator.tick().await.unwrap();
    assert_eq!(report.reconciled.reclaimed, vec![ids[0].clone()]);
    let delivery = s.queue.next_delivery().await.unwrap();
    assert_eq!(JobMessage::decode(&delivery.body).unwrap().id(), &ids[0]);
    delivery.ack().await.unwrap();

    // Redis loses everything: the next tick re-creates and re-publishes both jobs.
    s.store.wipe();
    let report = s.coordinator.tick().await.unwrap();
    assert_eq!(report.reconciled.published.len(), 2);
    for id in &ids {
        assert_eq!(
            s.store.get(id).await.unwrap().unwrap().status,
            JobStatus::Queued
        );
    }
}
