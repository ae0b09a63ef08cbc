//! The contract every [`ResultStore`] honours, run against each implementation.

use std::future::Future;
use std::time::Duration;

use super::{Claim, Enqueued, Finish, ResultStore};
use crate::job::{JobMessage, JobOrigin, JobStatus, JobV1, ModelRef};
use crate::result::{
    ComponentScores, FailureCode, FailureReason, Outcome, ResultMessage, ResultV1, Scores,
};

const LEASE: Duration = Duration::from_secs(60);

/// A job for model `name`; distinct names give distinct ids.
pub fn job(name: &str) -> JobV1 {
    let message = JobMessage::v1(
        ModelRef {
            namespace: "contract".into(),
            name: name.into(),
            revision: "main".into(),
            chat_template: "chatml".into(),
        },
        "v1",
        JobOrigin::Operator {
            requested_by: "testsuite".into(),
        },
        1_000,
    );
    message.job().clone()
}

/// A completed result for `job` with total `total`.
pub fn completed(job: &JobV1, total: f64, worker: &str) -> ResultMessage {
    ResultMessage::V1(ResultV1 {
        job_id: job.job_id.clone(),
        profile: job.profile.clone(),
        outcome: Outcome::Completed(Scores {
            components: ComponentScores {
                similarity: total,
                vibe: total,
                latency: total,
                size: total,
            },
            total,
            weights_fingerprint: format!("fp-{}", job.model.name),
            dataset_sha256: "d".repeat(64),
            revision_sha: "0".repeat(40),
            tokens: 10,
            samples_context_cut: None,
            latency: None,
        }),
        worker: worker.into(),
        attempt: 1,
        started_at_ms: 2_000,
        finished_at_ms: 3_000,
    })
}

/// Claims the stored job `id` and finishes it as completed with `total`, as
/// a worker would (for tests of what reads results).
pub async fn claim_and_complete(store: &dyn ResultStore, id: &crate::job::JobId, total: f64) {
    let record = store.get(id).await.unwrap().expect("the job is stored");
    store
        .claim(&record.job, "w", LEASE, crate::clock::now_ms())
        .await
        .unwrap();
    store
        .finish(&completed(&record.job, total, "w"))
        .await
        .unwrap();
}

/// Runs the suite. `make` builds a fresh, empty store each call.
pub async fn run<S, F, Fut>(make: F)
where
    S: ResultStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = make().await;
    let a = job("a");

    // Enqueue is idempotent.
    assert_eq!(store.enqueue(&a).await.unwrap(), Enqueued::Created);
    let Enqueued::Exists(existing) = store.enqueue(&a).await.unwrap() else {
        panic!("second enqueue must find the record");
    };
    assert_eq!(existing.status, JobStatus::Queued);
    assert_eq!(existing.job, a);
    assert!(store.get(&job("unknown").job_id).await.unwrap().is_none());

    // One worker at a time under a live lease.
    assert_eq!(
        store.claim(&a, "w1", LEASE, 10_000).await.unwrap(),
        Claim::Claimed { attempt: 1 }
    );
    assert_eq!(
        store.claim(&a, "w2", LEASE, 20_000).await.unwrap(),
        Claim::Leased {
            worker: "w1".into(),
            until_ms: 70_000
        }
    );
    // Heartbeats renew the lease and record progress.
    assert!(
        store
            .heartbeat(&a.job_id, "w1", 0.5, LEASE, 60_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .heartbeat(&a.job_id, "w2", 0.9, LEASE, 60_000)
            .await
            .unwrap()
    );
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Running);
    assert_eq!(record.worker.as_deref(), Some("w1"));
    assert_eq!(record.progress, 0.5);
    assert_eq!(record.lease_expires_at_ms, Some(120_000));
    assert!(!record.lease_expired(120_000));
    assert!(record.lease_expired(120_001));
    assert_eq!(
        store
            .jobs_with_status(JobStatus::Running)
            .await
            .unwrap()
            .len(),
        1
    );

    // An expired lease can be taken over.
    assert_eq!(
        store.claim(&a, "w2", LEASE, 130_000).await.unwrap(),
        Claim::Claimed { attempt: 2 }
    );
    assert!(
        !store
            .heartbeat(&a.job_id, "w1", 0.7, LEASE, 131_000)
            .await
            .unwrap()
    );

    // Finish is atomic and idempotent.
    let result = completed(&a, 0.75, "w2");
    assert_eq!(store.finish(&result).await.unwrap(), Finish::Recorded);
    assert_eq!(
        store.finish(&completed(&a, 0.10, "w1")).await.unwrap(),
        Finish::AlreadyFinished
    );
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Completed);
    assert_eq!(record.total(), Some(0.75));
    assert_eq!(record.result.as_ref(), Some(result.result()));
    assert_eq!(record.attempts, 2);
    assert_eq!(
        store.claim(&a, "w3", LEASE, 200_000).await.unwrap(),
        Claim::Finished
    );
    assert!(
        !store
            .heartbeat(&a.job_id, "w2", 0.9, LEASE, 200_000)
            .await
            .unwrap()
    );

    // Release hands a job back.
    let b = job("b");
    store.enqueue(&b).await.unwrap();
    store.claim(&b, "w1", LEASE, 10_000).await.unwrap();
    store.release(&b.job_id, "w1").await.unwrap();
    let record = store.get(&b.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Queued);
    assert_eq!(record.lease_expires_at_ms, None);
    assert_eq!(
        store.claim(&b, "w2", LEASE, 11_000).await.unwrap(),
        Claim::Claimed { attempt: 2 }
    );

    // Failures are final and stay off the leaderboard.
    let failed = ResultMessage::V1(ResultV1 {
        outcome: Outcome::Failed(FailureReason::new(FailureCode::ForbiddenFile, "model.bin")),
        ..completed(&b, 0.0, "w2").result().clone()
    });
    assert_eq!(store.finish(&failed).await.unwrap(), Finish::Recorded);
    assert_eq!(
        store.get(&b.job_id).await.unwrap().unwrap().status,
        JobStatus::Failed
    );
    assert_eq!(
        store
            .jobs_with_status(JobStatus::Failed)
            .await
            .unwrap()
            .len(),
        1
    );

    // A job unknown to the store (lost in a wipe) is recreated by its claim.
    let c = job("c");
    assert_eq!(
        store.claim(&c, "w1", LEASE, 10_000).await.unwrap(),
        Claim::Recreated
    );
    store.finish(&completed(&c, 0.9, "w1")).await.unwrap();

    // Leaderboard: completed jobs, best first.
    let d = job("d");
    store.enqueue(&d).await.unwrap();
    store.claim(&d, "w1", LEASE, 10_000).await.unwrap();
    store.finish(&completed(&d, 0.5, "w1")).await.unwrap();
    let board = store.leaderboard(10).await.unwrap();
    let order: Vec<_> = board.iter().map(|r| (r.job_id.clone(), r.total)).collect();
    assert_eq!(
        order,
        vec![
            (c.job_id.clone(), 0.9),
            (a.job_id.clone(), 0.75),
            (d.job_id.clone(), 0.5)
        ]
    );
    assert_eq!(store.leaderboard(1).await.unwrap().len(), 1);
}
