//! The Redis store against a real server (`REDIS_URL`, default
//! `redis://127.0.0.1:6379/`): the contract suite plus fault tests. Every test
//! works under its own random key prefix and deletes its keys at the end.
//!
//! Run with `cargo test --workspace --features common/rabbitmq,common/redis,common/testsuite --test integration redis::`.

use std::sync::Arc;
use std::time::Duration;

use common::job::{JobMessage, JobOrigin, JobV1, ModelRef};
use common::store::testsuite::{completed, job};
use common::store::{Claim, Finish, Lease, RedisConfig, RedisStore, ResultStore};
use parking_lot::Mutex;

use common::testsuite::unique_name;

use crate::support::init_tracing;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

async fn store(name: &str) -> RedisStore {
    init_tracing();
    RedisStore::connect(RedisConfig::for_prefix(redis_url(), unique_name(name)))
        .await
        .expect(
            "Redis on 127.0.0.1:6379 (start it with `redis-server --daemonize yes --bind 127.0.0.1 \
         --port 6379 --save '' --appendonly no`)",
        )
}

/// [`store`] holding one enqueued job, `a`.
async fn store_with_job(name: &str) -> (RedisStore, JobV1) {
    let store = store(name).await;
    let a = job("a");
    store.enqueue(&a).await.unwrap();
    (store, a)
}

async fn admin() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes the store's keys and checks none is left.
async fn cleanup(store: &RedisStore) {
    store.delete_everything().await.unwrap();
    let mut admin = admin().await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", store.config().prefix))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(left.is_empty(), "keys left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_suite() {
    let made: Arc<Mutex<Vec<RedisStore>>> = Arc::default();
    let registry = made.clone();
    common::store::testsuite::run(move || {
        let registry = registry.clone();
        async move {
            let store = store("contract").await;
            registry.lock().push(store.clone());
            store
        }
    })
    .await;
    let stores = made.lock().clone();
    for store in stores {
        cleanup(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_finish_records_exactly_one_result() {
    let (store, a) = store_with_job("finish8").await;
    store
        .claim(&a, Lease::new("w0", 1_000, Duration::from_secs(60)))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let result = completed(&a, f64::from(i) / 10.0, &format!("w{i}"));
            tokio::spawn(async move { (store.finish(&result).await.unwrap(), result) })
        })
        .collect();
    let mut recorded = Vec::new();
    for task in tasks {
        let (finish, result) = task.await.unwrap();
        if finish == Finish::Recorded {
            recorded.push(result);
        }
    }
    assert_eq!(recorded.len(), 1, "exactly one finish is recorded");
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(record.result.as_ref(), Some(recorded[0].result()));
    let board = store.leaderboard(10).await.unwrap();
    assert_eq!(board.len(), 1);
    assert_eq!(Some(board[0].total), record.total());
    cleanup(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_survived() {
    let (store, a) = store_with_job("kill").await;
    let mut admin = admin().await;
    for round in 0..3 {
        let before = store.connection_id().await.unwrap();
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(before)
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(killed, 1);
        // Writes and reads right after the kill go through on the retry.
        let renewed = match round {
            0 => {
                store
                    .claim(&a, Lease::new("w1", 1_000, Duration::from_secs(60)))
                    .await
                    .unwrap();
                true
            }
            _ => store
                .heartbeat(
                    &a.job_id,
                    Lease::new("w1", 2_000, Duration::from_secs(60)),
                    0.5,
                )
                .await
                .unwrap(),
        };
        assert!(renewed);
        assert_ne!(store.connection_id().await.unwrap(), before);
    }
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 1, "a retried claim counts once");
    assert_eq!(record.progress, 0.5);
    cleanup(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_schema_and_indexes() {
    let store = store("schema").await;
    let chain_job = JobMessage::v1(
        ModelRef {
            namespace: "Alice".into(),
            name: "RP-7b".into(),
            revision: "main".into(),
            chat_template: "chatml".into(),
        },
        "v1",
        JobOrigin::Chain {
            uid: 7,
            hotkey: "5Alice".into(),
            block: 42,
        },
        1_000,
    )
    .job()
    .clone();
    store.enqueue(&chain_job).await.unwrap();
    assert_eq!(
        store.job_ids_for_hotkey("5Alice").await.unwrap(),
        vec![chain_job.job_id.clone()]
    );
    assert_eq!(
        store.job_ids_for_model("alice", "rp-7b").await.unwrap(),
        vec![chain_job.job_id.clone()]
    );
    assert!(store.job_ids_for_hotkey("5Bob").await.unwrap().is_empty());

    assert!(matches!(
        store
            .claim(&chain_job, Lease::new("w1", 5_000, Duration::from_secs(60)))
            .await
            .unwrap(),
        Claim::Claimed { attempt: 1 }
    ));
    store
        .finish(&completed(&chain_job, 0.25, "w1"))
        .await
        .unwrap();
    let prefix = &store.config().prefix;
    let mut admin = admin().await;
    let key = format!("{prefix}:job:{}", chain_job.job_id);
    let (status, total, hotkey, lease): (String, String, String, Option<String>) =
        redis::cmd("HMGET")
            .arg(&key)
            .arg(&["status", "total", "hotkey", "lease_expires_at_ms"])
            .query_async(&mut admin)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), total.as_str(), hotkey.as_str(), lease),
        ("COMPLETED", "0.25", "5Alice", None)
    );
    let done: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}:done:{}", chain_job.job_id))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(done.is_some(), "finish writes its idempotency key");
    let completed_ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:status:COMPLETED"))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(completed_ids, vec![chain_job.job_id.to_string()]);
    let running: u64 = redis::cmd("SCARD")
        .arg(format!("{prefix}:status:RUNNING"))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(running, 0);
    store.ping().await.unwrap();
    cleanup(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_records_are_reported_not_panicked_on() {
    let store = store("corrupt").await;
    let a = job("a");
    let mut admin = admin().await;
    let key = format!("{}:job:{}", store.config().prefix, a.job_id);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("status")
        .arg("RUNNING")
        .arg("job")
        .arg("{broken")
        .query_async(&mut admin)
        .await
        .unwrap();
    let err = store.get(&a.job_id).await.unwrap_err();
    assert!(
        matches!(err, common::store::StoreError::Corrupt { key: ref k, .. } if *k == key),
        "{err:?}"
    );
    let _: () = redis::cmd("SADD")
        .arg(format!("{}:status:RUNNING", store.config().prefix))
        .arg(a.job_id.as_str())
        .query_async(&mut admin)
        .await
        .unwrap();
    let b = job("b");
    store.enqueue(&b).await.unwrap();
    store
        .claim(&b, Lease::new("w1", 1_000, Duration::from_secs(60)))
        .await
        .unwrap();
    let running = store
        .jobs_with_status(common::job::JobStatus::Running)
        .await
        .unwrap();
    assert_eq!(
        running.len(),
        1,
        "the corrupt record is skipped, the good one listed"
    );
    assert_eq!(running[0].job, b);
    cleanup(&store).await;
}

/// A write that times out may still land. The retry must then answer what
/// the first attempt did: one claim counted, `Created`, `Recorded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_that_had_landed_counts_once() {
    init_tracing();
    let store = RedisStore::connect(RedisConfig {
        url: redis_url().into(),
        prefix: unique_name("retry"),
        response_timeout: Duration::from_millis(150),
        retry_attempts: 10,
        retry_max_backoff: Duration::from_millis(400),
        ..RedisConfig::default()
    })
    .await
    .unwrap();
    let a = job("a");
    let mut admin = admin().await;
    let pause = |ms: u64| {
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .arg("WRITE")
            .to_owned()
    };

    // Writes are held back by the pause past the response timeout, then run.
    let _: () = pause(400).query_async(&mut admin).await.unwrap();
    assert_eq!(
        store.enqueue(&a).await.unwrap(),
        common::store::Enqueued::Created
    );
    let _: () = pause(400).query_async(&mut admin).await.unwrap();
    assert_eq!(
        store
            .claim(&a, Lease::new("w1", 1_000, Duration::from_secs(60)))
            .await
            .unwrap(),
        Claim::Claimed { attempt: 1 }
    );
    let _: () = pause(400).query_async(&mut admin).await.unwrap();
    assert_eq!(
        store.finish(&completed(&a, 0.5, "w1")).await.unwrap(),
        Finish::Recorded
    );
    let record = store.get(&a.job_id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 1);
    // A different call with the same payload is a duplicate.
    assert_eq!(
        store.finish(&completed(&a, 0.5, "w1")).await.unwrap(),
        Finish::AlreadyFinished
    );
    cleanup(&store).await;
}
