//! The contract every [`ResultStore`] honours, run against each implementation.

use std::future::Future;
use std::time::Duration;

use super::PublishOutcome::{Confirmed, Failed};
use super::{Claim, Enqueued, Finish, Lease, PublishCheck, ResultStore};
use crate::job::{JobId, JobOrigin, JobStatus, JobV1};
use crate::result::{
    AnswerProbabilities, FailureCode, FailureReason, Outcome, ResultMessage, ResultV1,
    SampleRecord, Scores,
};

const LEASE: Duration = Duration::from_secs(60);

/// A job for model `name`; distinct names give distinct ids.
pub fn job(name: &str) -> JobV1 {
    crate::testsuite::job_message(name, 1_000).job().clone()
}

/// A completed result for `job` with total `total`.
pub fn completed(job: &JobV1, total: f64, worker: &str) -> ResultMessage {
    ResultMessage::V1(ResultV1 {
        job_id: job.job_id.clone(),
        profile: job.profile.clone(),
        outcome: Outcome::Completed(Scores {
            components: crate::testsuite::uniform_scores(total),
            total,
            weights_fingerprint: format!("fp-{}", job.model.name),
            dataset_sha256: "d".repeat(64),
            revision_sha: "0".repeat(40),
            tokens: 10,
            samples_context_cut: None,
            latency: None,
            samples: Vec::new(),
            judge: None,
        }),
        worker: worker.into(),
        attempt: 1,
        started_at_ms: 2_000,
        finished_at_ms: 3_000,
    })
}

/// A failed result for `job`, as `worker` would record it.
pub fn failed(job: &JobV1, code: FailureCode, message: &str, worker: &str) -> ResultMessage {
    ResultMessage::V1(ResultV1 {
        outcome: Outcome::Failed(FailureReason::new(code, message)),
        ..completed(job, 0.0, worker).result().clone()
    })
}

/// Claims the stored job `id` and finishes it as completed with `total`, as
/// a worker would (for tests of what reads results).
pub async fn claim_and_complete(store: &dyn ResultStore, id: &crate::job::JobId, total: f64) {
    let record = store.get(id).await.unwrap().expect("the job is stored");
    store
        .claim(&record.job, lease("w", crate::clock::now_ms()))
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

    // The store's clock is the wall clock (the servers here run on this machine).
    let before = crate::clock::now_ms();
    let store_ms = store.time_ms().await.unwrap();
    let after = crate::clock::now_ms();
    assert!(
        (before.saturating_sub(1_000)..=after + 1_000).contains(&store_ms),
        "store time {store_ms}, local {before}..{after}"
    );

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
        store.claim(&a, lease("w1", 10_000)).await.unwrap(),
        Claim::Claimed { attempt: 1 }
    );
    assert_eq!(
        store.claim(&a, lease("w2", 20_000)).await.unwrap(),
        Claim::Leased {
            worker: "w1".into(),
            until_ms: 70_000
        }
    );
    // Heartbeats renew the lease and record progress.
    assert!(
        store
            .heartbeat(&a.job_id, lease("w1", 60_000), 0.5)
            .await
            .unwrap()
    );
    assert!(
        !store
            .heartbeat(&a.job_id, lease("w2", 60_000), 0.9)
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
        store.claim(&a, lease("w2", 130_000)).await.unwrap(),
        Claim::Claimed { attempt: 2 }
    );
    assert!(
        !store
            .heartbeat(&a.job_id, lease("w1", 131_000), 0.7)
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
        store.claim(&a, lease("w3", 200_000)).await.unwrap(),
        Claim::Finished
    );
    assert!(
        !store
            .heartbeat(&a.job_id, lease("w2", 200_000), 0.9)
            .await
            .unwrap()
    );

    // Release hands a job back.
    let b = job("b");
    store.enqueue(&b).await.unwrap();
    store.claim(&b, lease("w1", 10_000)).await.unwrap();
    store.release(&b.job_id, "w1").await.unwrap();
    let record = store.get(&b.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Queued);
    assert_eq!(record.lease_expires_at_ms, None);
    assert_eq!(
        store.claim(&b, lease("w2", 11_000)).await.unwrap(),
        Claim::Claimed { attempt: 2 }
    );

    // Failures are final and stay off the leaderboard.
    let failed = failed(&b, FailureCode::ForbiddenFile, "model.bin", "w2");
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
        store.claim(&c, lease("w1", 10_000)).await.unwrap(),
        Claim::Recreated
    );
    store.finish(&completed(&c, 0.9, "w1")).await.unwrap();

    // Leaderboard: completed jobs, best first.
    let d = job("d");
    store.enqueue(&d).await.unwrap();
    store.claim(&d, lease("w1", 10_000)).await.unwrap();
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

    publication(&make().await).await;
    lifecycle_table(&make().await).await;
    per_sample_records(&make().await).await;
}

/// `count` per-sample records, every other one with a vibe and a reply
/// that JSON and HTML would both have to escape.
pub fn sample_records(count: usize) -> Vec<SampleRecord> {
    (0..count)
        .map(|i| SampleRecord {
            conversation_id: format!("conversation-{i}"),
            similarity: 1.0 / (i as f64 + 2.0),
            vibe: (i % 2 == 0).then_some(0.125 * (i % 8) as f64),
            reply: (i % 2 == 0).then(|| {
                format!("reply {i}: \"quoted\" <script>alert(1)</script> \\ ünïcode ✓\nline two")
            }),
            context_cut: i % 3 == 0,
            verdict: (i % 4 == 1).then(|| {
                crate::scoring::judge_verdict(
                    AnswerProbabilities { a: 0.625, b: 0.125 },
                    AnswerProbabilities { a: 0.25, b: 0.5 },
                )
            }),
        })
        .collect()
}

/// `completed` with per-sample records.
pub fn completed_with_samples(
    job: &JobV1,
    total: f64,
    worker: &str,
    samples: Vec<SampleRecord>,
) -> ResultMessage {
    let ResultMessage::V1(mut result) = completed(job, total, worker);
    if let Outcome::Completed(scores) = &mut result.outcome {
        scores.samples = samples;
    }
    ResultMessage::V1(result)
}

/// The records of a completed result are stored apart from the record, with
/// it, once; nothing else has any.
async fn per_sample_records<S: ResultStore>(store: &S) {
    let a = job("samples-a");
    store.enqueue(&a).await.unwrap();
    assert!(store.samples(&a.job_id).await.unwrap().is_empty());
    store.claim(&a, lease("w1", 1_000)).await.unwrap();
    assert!(store.samples(&a.job_id).await.unwrap().is_empty());

    let records = sample_records(5);
    assert!(
        records.iter().any(|r| r.verdict.is_some()),
        "a judged sample is stored too"
    );
    let result = completed_with_samples(&a, 0.5, "w1", records.clone());
    assert_eq!(store.finish(&result).await.unwrap(), Finish::Recorded);
    assert_eq!(store.samples(&a.job_id).await.unwrap(), records);
    // The record carries the result without them.
    let mut without = result.result().clone();
    without.take_samples();
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(record.result.as_ref(), Some(&without));
    let listed = store.jobs_with_status(JobStatus::Completed).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].result.as_ref(), Some(&without));
    // A second result changes nothing, its records included.
    let late = completed_with_samples(&a, 0.1, "w2", sample_records(2));
    assert_eq!(store.finish(&late).await.unwrap(), Finish::AlreadyFinished);
    assert_eq!(store.samples(&a.job_id).await.unwrap(), records);

    // A result from a worker that did not record samples has none.
    let old = job("samples-old");
    store.enqueue(&old).await.unwrap();
    store.claim(&old, lease("w1", 1_000)).await.unwrap();
    store.finish(&completed(&old, 0.4, "w1")).await.unwrap();
    assert!(store.samples(&old.job_id).await.unwrap().is_empty());
    assert_eq!(
        store.get(&old.job_id).await.unwrap().unwrap().total(),
        Some(0.4)
    );

    // Neither has a failure, nor a job the store never saw.
    let failed_job = job("samples-failed");
    store.enqueue(&failed_job).await.unwrap();
    let failed = failed(&failed_job, FailureCode::NanOutput, "NaN logits", "w1");
    store.finish(&failed).await.unwrap();
    assert!(store.samples(&failed_job.job_id).await.unwrap().is_empty());
    assert!(
        store
            .samples(&job("samples-unknown").job_id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A job for model `name` submitted on chain by `hotkey`.
pub fn chain_job(name: &str, hotkey: &str, queued_at_ms: u64) -> JobV1 {
    JobV1 {
        origin: JobOrigin::Chain {
            uid: 1,
            hotkey: hotkey.into(),
            block: 100,
        },
        queued_at_ms,
        ..job(name)
    }
}

/// A reconciler's look at `now_ms`, taking a publish begun over 30 s
/// earlier for abandoned.
fn check(now_ms: u64) -> PublishCheck {
    PublishCheck {
        now_ms,
        stale_after: Duration::from_secs(30),
    }
}

/// A lease of [`LEASE`] by `worker` from `from_ms`.
fn lease(worker: &str, from_ms: u64) -> Lease<'_> {
    Lease::new(worker, from_ms, LEASE)
}

/// Checks that `store` starts no publish of `id` at `now_ms`: the job needs
/// no message, or another publisher holds it.
async fn assert_publish_refused<S: ResultStore>(store: &S, id: &JobId, now_ms: u64) {
    assert_eq!(store.begin_publish(id, check(now_ms)).await.unwrap(), None);
}

/// Publishes `id` at `now_ms` as the reconciler does: starts a publish (it
/// must start) and ends it sent.
async fn publish<S: ResultStore>(store: &S, id: &JobId, now_ms: u64) {
    let attempt = store.begin_publish(id, check(now_ms)).await.unwrap();
    store
        .end_publish(id, attempt.unwrap(), Confirmed { at_ms: now_ms })
        .await
        .unwrap();
}

/// The reconciler's bookkeeping: one publisher at a time, one reclaim per
/// expiry, one requeue per lost message.
async fn publication<S: ResultStore>(store: &S) {
    let a = job("pub-a");
    store.enqueue(&a).await.unwrap();
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert!(record.needs_publish(check(1_000)));
    assert_eq!(record.published_at_ms, None);

    // One publisher holds the publish; a second is refused until it is stale.
    assert_eq!(
        store.begin_publish(&a.job_id, check(1_000)).await.unwrap(),
        Some(1)
    );
    assert_publish_refused(store, &a.job_id, 2_000).await;
    // The first publisher died: after `stale_after` another takes over, and
    // the dead one's late end changes nothing.
    let second = store.begin_publish(&a.job_id, check(40_000)).await.unwrap();
    assert_eq!(second, Some(2));
    let late_end = Confirmed { at_ms: 40_500 };
    store.end_publish(&a.job_id, 1, late_end).await.unwrap();
    assert_eq!(
        store.get(&a.job_id).await.unwrap().unwrap().published_at_ms,
        None
    );
    // A failed publish leaves the job for the next try at once.
    store.end_publish(&a.job_id, 2, Failed).await.unwrap();
    assert!(
        store
            .get(&a.job_id)
            .await
            .unwrap()
            .unwrap()
            .needs_publish(check(41_000))
    );
    assert_eq!(
        store.begin_publish(&a.job_id, check(41_000)).await.unwrap(),
        Some(3)
    );
    store
        .end_publish(&a.job_id, 3, Confirmed { at_ms: 42_000 })
        .await
        .unwrap();
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(record.published_at_ms, Some(42_000));
    assert_eq!(record.publish_attempts, 3);
    assert!(!record.needs_publish(check(500_000)));
    assert_publish_refused(store, &a.job_id, 500_000).await;

    // A dead-lettered message: requeue once, then publish again.
    assert!(!store.requeue(&a.job_id, 41_999).await.unwrap());
    assert!(store.requeue(&a.job_id, 42_000).await.unwrap());
    assert!(!store.requeue(&a.job_id, 42_000).await.unwrap());
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!((record.status, record.requeues), (JobStatus::Queued, 1));
    assert!(record.needs_publish(check(43_000)));
    publish(store, &a.job_id, 42_500).await;

    // A message the broker lost: the same move, counted apart.
    assert!(!store.requeue_lost(&a.job_id, 42_000).await.unwrap());
    assert!(store.requeue_lost(&a.job_id, 42_500).await.unwrap());
    assert!(!store.requeue_lost(&a.job_id, 42_500).await.unwrap());
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.requeues, record.lost_messages),
        (JobStatus::Queued, 1, 1)
    );
    assert!(record.needs_publish(check(43_000)));
    publish(store, &a.job_id, 43_000).await;

    // A hand-back keeps the message (the worker returns it to the queue).
    store.claim(&a, lease("w1", 50_000)).await.unwrap();
    store.release(&a.job_id, "w1").await.unwrap();
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Queued);
    assert_eq!(record.published_at_ms, Some(43_000));

    // An expired lease is reclaimed once: not while it is live, not with a
    // lease other than the one seen, not twice.
    store.claim(&a, lease("w1", 60_000)).await.unwrap();
    assert!(!store.reclaim(&a.job_id, 120_000, 100_000).await.unwrap());
    assert!(!store.reclaim(&a.job_id, 119_999, 130_000).await.unwrap());
    assert!(store.reclaim(&a.job_id, 120_000, 130_000).await.unwrap());
    assert!(!store.reclaim(&a.job_id, 120_000, 130_000).await.unwrap());
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Queued);
    assert_eq!((record.reclaims, record.lease_expires_at_ms), (1, None));
    assert!(record.needs_publish(check(130_000)));
    // The worker that lost the lease learns it from its next heartbeat.
    assert!(
        !store
            .heartbeat(&a.job_id, lease("w1", 130_001), 0.5)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .jobs_with_status(JobStatus::Queued)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .jobs_with_status(JobStatus::Running)
            .await
            .unwrap()
            .is_empty()
    );

    // Jobs by miner hotkey, oldest first; operator jobs have none.
    let first = chain_job("hk-1", "5Miner", 1_000);
    let second = chain_job("hk-2", "5Miner", 2_000);
    store.enqueue(&second).await.unwrap();
    store.enqueue(&first).await.unwrap();
    store
        .enqueue(&chain_job("hk-3", "5Other", 500))
        .await
        .unwrap();
    let ids: Vec<_> = store
        .jobs_of_hotkey("5Miner")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.job.job_id)
        .collect();
    assert_eq!(ids, vec![first.job_id, second.job_id]);
    assert!(store.jobs_of_hotkey("5Nobody").await.unwrap().is_empty());
}

/// Every status change a store makes is a row of the table, and the ones
/// the table leaves out are refused.
async fn lifecycle_table<S: ResultStore>(store: &S) {
    // Final jobs take no reclaim, requeue, hand-back or second result.
    let done = job("table-done");
    store.enqueue(&done).await.unwrap();
    store.claim(&done, lease("w1", 1_000)).await.unwrap();
    store.finish(&completed(&done, 0.5, "w1")).await.unwrap();
    assert!(!store.reclaim(&done.job_id, 61_000, 999_999).await.unwrap());
    store.release(&done.job_id, "w1").await.unwrap();
    let record = store.get(&done.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Completed);
    assert_publish_refused(store, &done.job_id, 999_999).await;
    // A QUEUED job can fail without ever running (the reconciler gives up
    // on a dead-lettered job), and a RUNNING one cannot be requeued.
    let never_ran = job("table-never-ran");
    store.enqueue(&never_ran).await.unwrap();
    let failed = failed(
        &never_ran,
        FailureCode::DeliveryLimit,
        "gave up",
        "coordinator",
    );
    assert_eq!(store.finish(&failed).await.unwrap(), Finish::Recorded);
    assert_eq!(
        store.get(&never_ran.job_id).await.unwrap().unwrap().status,
        JobStatus::Failed
    );
    let running = job("table-running");
    store.enqueue(&running).await.unwrap();
    publish(store, &running.job_id, 1_000).await;
    store.claim(&running, lease("w1", 2_000)).await.unwrap();
    assert!(!store.requeue(&running.job_id, 1_000).await.unwrap());
    assert_eq!(
        store.get(&running.job_id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
}
