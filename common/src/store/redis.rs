//! The [`ResultStore`] on Redis (feature `redis`). This module is the one
//! place that documents the key schema.
//!
//! # Keys
//! Every key starts with a configurable prefix ([`RedisConfig::prefix`],
//! default `eval`), so several clusters (or parallel tests) can share a
//! server. `{id}` is a job id (32 lowercase hex digits).
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `{prefix}:job:{id}` | hash | the job record, fields below |
//! | `{prefix}:status:{STATUS}` | set | ids of jobs in QUEUED, RUNNING, COMPLETED or FAILED (`jobs_with_status`) |
//! | `{prefix}:leaderboard` | sorted set | id → total score of every COMPLETED job |
//! | `{prefix}:idx:hotkey:{hotkey}` | set | ids of jobs that came from this miner hotkey |
//! | `{prefix}:idx:model:{namespace}/{name}` | set | ids of jobs of this repository (lowercased, as job ids are) |
//! | `{prefix}:done:{id}` | string | idempotency key of `finish`: the token of the call that recorded the result |
//! | `{prefix}:samples:{id}` | string | the per-sample records of a COMPLETED result (`samples`), below |
//!
//! **TTLs: none.** A finished job is the memory that stops a model from
//! being evaluated twice, and the leaderboard is built from these records, so
//! nothing expires on its own. Leases are *fields* (`lease_expires_at_ms`),
//! not key TTLs, so that an expired lease stays visible to the coordinator,
//! which re-publishes the job. Without persistence (as configured here) a
//! Redis restart forgets everything: `claim` then recreates the record
//! ([`Claim::Recreated`]) and the coordinator re-enqueues what the chain
//! still names.
//!
//! # Fields of `{prefix}:job:{id}`
//! - `job`: the job as versioned JSON ([`JobMessage`], `eval-job/v1`);
//!   `job_id`, `namespace`, `name`, `revision`, `chat_template`, `profile`,
//!   `hotkey` (chain jobs only): flat copies for people and `redis-cli`.
//! - `status` (`QUEUED` | `RUNNING` | `COMPLETED` | `FAILED`), `attempts`
//!   (claims so far), `worker`, `queued_at_ms`, `started_at_ms`,
//!   `finished_at_ms`, `lease_expires_at_ms` (unix ms; absent unless RUNNING),
//!   `progress` (`0`..`1`).
//! - `result`: the result as versioned JSON ([`ResultMessage`],
//!   `eval-result/v1`), once final; flat copies `score_similarity`,
//!   `score_vibe`, `score_latency`, `score_size`, `total` (COMPLETED) or
//!   `reason_code`, `reason` (FAILED).
//!   The `result` JSON leaves out the per-sample records
//!   (`outcome.samples`): the coordinator's status index reads every hash
//!   every second, and they are by far the largest part of a result.
//! - `published_at_ms`, `publish_attempts`, `publishing_since_ms`,
//!   `reclaims`, `requeues`, `lost_messages`: the reconciler's publication bookkeeping
//!   ([`JobRecord`] documents each).
//! - `enqueue_token`, `claim_token`, `claim_recreated`: bookkeeping that makes
//!   a retried `enqueue` or `claim` (see below) answer what the first try did.
//!
//! # `{prefix}:samples:{id}`
//! The JSON array of the result's [`SampleRecord`]s, in sample order, exactly
//! as `outcome.samples` of `eval-result/v1` writes them (the same type, so
//! a record's shape changes with the result's version). Written by the
//! `finish` script together with the hash, only for a COMPLETED result that
//! has records; read only by `samples` (the API's
//! `GET /v1/jobs/{id}/samples`, for a job the status index shows
//! COMPLETED). Size: at most the profile's `similarity_samples` records (64
//! in v1), replies cut to [`SampleRecord::REPLY_CHARS`] characters on the
//! `vibe_samples` (16 in v1): tens of kilobytes a job. No TTL, like the job
//! hash it belongs to.
//!
//! # Atomicity and idempotency
//! `enqueue`, `claim`, `heartbeat`, `release`, `finish` and the reconciler's
//! `begin_publish`, `end_publish`, `reclaim` and `requeue` are each one Lua
//! script, so the hash, the status sets, the indexes and the leaderboard
//! change together. Every status change goes through the prelude's
//! `transition`, which checks it against [`crate::job::TRANSITIONS`]
//! (rendered into the script) before the script writes anything: Redis does
//! not roll a failed script back. `enqueue` creates the record only if the hash does not
//! exist. `finish` is guarded by `{prefix}:done:{id}`: the first call writes
//! its token there and records the result; every later call changes nothing
//! and reports [`Finish::AlreadyFinished`].
//!
//! # Dropped connections
//! The store talks through a [`ConnectionManager`], which reconnects on its
//! own, but the command that met the dropped connection still fails. Every
//! operation is therefore retried (with jittered backoff, [`crate::retry`],
//! up to [`RedisConfig::retry_attempts`] tries) on I/O errors and timeouts. Retrying
//! is safe because each operation is idempotent *per call*: the mutating
//! scripts carry a token unique to the call, so a retry whose first attempt
//! did land answers exactly as that attempt would have (`Created`, `Claimed`,
//! `Recorded`) instead of counting a second claim or misreporting a finish.
//! The 500 ms default response timeout of the redis crate is raised to
//! [`RedisConfig::response_timeout`] (5 s by default).
//!
//! A record that cannot be decoded is a [`StoreError::Corrupt`] from `get`;
//! `jobs_with_status` logs and skips it, so one bad record does not hide the
//! others from the coordinator.
//!
//! The scripts touch several keys; they need a single Redis node (or
//! Sentinel), not Redis Cluster.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError, RedisResult, RetryMethod, Script, ScriptInvocation};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, warn};

use super::{
    Claim, Enqueued, Finish, JobRecord, Lease, PublishCheck, PublishOutcome, RankedJob, Result,
    ResultStore, StoreError, best_first, millis, sort_oldest_first,
};
use crate::job::{JobId, JobMessage, JobOrigin, JobStatus, JobV1, transitions_lua};
use crate::result::{Outcome, ResultMessage, SampleRecord};
use crate::retry::{self, Delays};
use crate::secret_url::SecretUrl;

/// How to reach Redis and where the keys live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:6379/db`.
    pub url: SecretUrl,
    /// Prefix of every key (see the module docs).
    pub prefix: String,
    /// How long one command may take before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// How long one connection attempt may take.
    #[serde(with = "humantime_serde")]
    pub connection_timeout: Duration,
    /// Tries per operation when the connection drops or times out (at least 1).
    pub retry_attempts: u32,
    /// The longest pause between two tries.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("redis://127.0.0.1:6379/"),
            prefix: "eval".into(),
            response_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(5),
            retry_attempts: 6,
            retry_max_backoff: Duration::from_secs(2),
        }
    }
}

impl RedisConfig {
    /// The defaults for the server at `url` with every key under `prefix`.
    pub fn for_prefix(url: impl Into<SecretUrl>, prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.prefix.is_empty()
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(format!(
                "redis.prefix `{}` must be non-empty ASCII letters, digits, `-`, `_`, `.` or `:`",
                self.prefix
            ));
        }
        if self.retry_attempts == 0 {
            return Err("redis.retry_attempts must be at least 1".into());
        }
        if self.response_timeout.is_zero() || self.connection_timeout.is_zero() {
            return Err("redis timeouts must be positive".into());
        }
        Ok(())
    }
}

/// Key names; the one place that spells them.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn job(&self, id: &JobId) -> String {
        format!("{}:job:{id}", self.prefix)
    }
    fn done(&self, id: &JobId) -> String {
        format!("{}:done:{id}", self.prefix)
    }
    fn samples(&self, id: &JobId) -> String {
        format!("{}:samples:{id}", self.prefix)
    }
    fn leaderboard(&self) -> String {
        format!("{}:leaderboard", self.prefix)
    }
    fn status(&self, status: JobStatus) -> String {
        format!("{}:status:{status}", self.prefix)
    }
    fn hotkey(&self, hotkey: &str) -> String {
        format!("{}:idx:hotkey:{hotkey}", self.prefix)
    }
    fn model(&self, namespace: &str, name: &str) -> String {
        format!(
            "{}:idx:model:{}/{}",
            self.prefix,
            namespace.to_lowercase(),
            name.to_lowercase()
        )
    }
    /// The status sets in the order the scripts expect them (KEYS[2..5]).
    fn statuses(&self) -> [String; 4] {
        [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Completed,
            JobStatus::Failed,
        ]
        .map(|s| self.status(s))
    }
}

/// Lua shared by the scripts. KEYS[1] is the job hash, KEYS[2..5] the status
/// sets (QUEUED, RUNNING, COMPLETED, FAILED); for scripts that may create the
/// record, KEYS[6] is the model index and KEYS[7], when present, the hotkey
/// index.
const PRELUDE: &str = r#"
local function set_status(id, status)
  local sets = {QUEUED = KEYS[2], RUNNING = KEYS[3], COMPLETED = KEYS[4], FAILED = KEYS[5]}
  for name, key in pairs(sets) do
    if name == status then
      redis.call('SADD', key, id)
    else
      redis.call('SREM', key, id)
    end
  end
  redis.call('HSET', KEYS[1], 'status', status)
end
-- Moves the job along the lifecycle table, or fails the script before it
-- wrote anything (callers transition first).
local function transition(id, name)
  local from = redis.call('HGET', KEYS[1], 'status')
  local to = TRANSITIONS[tostring(from) .. '>' .. name]
  if not to then
    error('illegal transition ' .. name .. ' from ' .. tostring(from))
  end
  set_status(id, to)
end
-- Whether the job is in `status` with `field` equal to `value`: the guard of
-- every conditional move, so that a stale caller changes nothing.
local function holds(status, field, value)
  local f = redis.call('HMGET', KEYS[1], 'status', field)
  return f[1] == status and f[2] == value
end
-- Creates a QUEUED record from the field/value pairs in ARGV[first..].
local function create(id, first)
  redis.call('HSET', KEYS[1], unpack(ARGV, first))
  set_status(id, 'QUEUED')
  redis.call('SADD', KEYS[6], id)
  if KEYS[7] then
    redis.call('SADD', KEYS[7], id)
  end
end
"#;

/// ARGV: id, token, record fields…
/// Returns {'created'} or {'exists', field, value, …}.
const ENQUEUE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'enqueue_token') == ARGV[2] then
    return {'created'}
  end
  local out = redis.call('HGETALL', KEYS[1])
  table.insert(out, 1, 'exists')
  return out
end
create(ARGV[1], 3)
return {'created'}
"#;

/// ARGV: id, token, worker, now_ms, lease_until_ms, record fields…
/// Returns {'finished'}, {'leased', worker, until_ms} or {'claimed', attempts, recreated}.
const CLAIM: &str = r#"
local recreated = '0'
if redis.call('EXISTS', KEYS[1]) == 0 then
  create(ARGV[1], 6)
  recreated = '1'
else
  local f = redis.call('HMGET', KEYS[1], 'status', 'worker', 'lease_expires_at_ms',
                       'claim_token', 'attempts', 'claim_recreated')
  if f[1] == 'COMPLETED' or f[1] == 'FAILED' then
    return {'finished'}
  end
  if f[1] == 'RUNNING' then
    if f[4] == ARGV[2] then
      return {'claimed', f[5], f[6] or '0'}
    end
    local until_ms = tonumber(f[3])
    if f[2] and until_ms and until_ms >= tonumber(ARGV[4]) and f[2] ~= ARGV[3] then
      return {'leased', f[2], f[3]}
    end
  end
end
transition(ARGV[1], 'claim')
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'worker', ARGV[3], 'started_at_ms', ARGV[4],
           'lease_expires_at_ms', ARGV[5], 'progress', '0',
           'claim_token', ARGV[2], 'claim_recreated', recreated)
return {'claimed', tostring(attempts), recreated}
"#;

/// ARGV: worker, progress, lease_until_ms. Returns 1 when renewed.
const HEARTBEAT: &str = r#"
if not holds('RUNNING', 'worker', ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'lease_expires_at_ms', ARGV[3])
return 1
"#;

/// ARGV: id, worker.
const RELEASE: &str = r#"
if holds('RUNNING', 'worker', ARGV[2]) then
  transition(ARGV[1], 'hand_back')
  redis.call('HDEL', KEYS[1], 'lease_expires_at_ms')
  redis.call('HSET', KEYS[1], 'progress', '0')
end
return 1
"#;

/// KEYS[6]: done key, KEYS[7]: leaderboard, KEYS[8]: samples key.
/// ARGV: id, token, final status, total, samples JSON ('' for none), result
/// fields…
/// Returns 'recorded', 'already' or 'missing'.
const FINISH: &str = r#"
local done = redis.call('GET', KEYS[6])
if done then
  if done == ARGV[2] then
    return 'recorded'
  end
  return 'already'
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'missing'
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'COMPLETED' or status == 'FAILED' then
  return 'already'
end
if ARGV[3] == 'COMPLETED' then
  transition(ARGV[1], 'complete')
else
  transition(ARGV[1], 'fail')
end
redis.call('SET', KEYS[6], ARGV[2])
redis.call('HDEL', KEYS[1], 'lease_expires_at_ms')
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[3] == 'COMPLETED' then
  redis.call('ZADD', KEYS[7], ARGV[4], ARGV[1])
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[8], ARGV[5])
end
return 'recorded'
"#;

/// ARGV: now_ms, stale_after_ms. Returns the attempt number, or 0 when the
/// job needs no message or another publisher holds it.
const BEGIN_PUBLISH: &str = r#"
local f = redis.call('HMGET', KEYS[1], 'status', 'published_at_ms', 'publishing_since_ms')
if f[1] ~= 'QUEUED' or f[2] then
  return 0
end
if f[3] and tonumber(f[3]) + tonumber(ARGV[2]) >= tonumber(ARGV[1]) then
  return 0
end
local attempt = redis.call('HINCRBY', KEYS[1], 'publish_attempts', 1)
redis.call('HSET', KEYS[1], 'publishing_since_ms', ARGV[1])
return attempt
"#;

/// ARGV: attempt, published_at_ms ('' when the publish failed).
const END_PUBLISH: &str = r#"
local f = redis.call('HMGET', KEYS[1], 'publish_attempts', 'publishing_since_ms')
if f[1] ~= ARGV[1] or not f[2] then
  return 0
end
redis.call('HDEL', KEYS[1], 'publishing_since_ms')
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'published_at_ms', ARGV[2])
end
return 1
"#;

/// ARGV: id, lease_expires_at_ms seen, now_ms. Returns 1 when reclaimed.
const RECLAIM: &str = r#"
if not holds('RUNNING', 'lease_expires_at_ms', ARGV[2]) or tonumber(ARGV[2]) >= tonumber(ARGV[3]) then
  return 0
end
transition(ARGV[1], 'reclaim')
redis.call('HDEL', KEYS[1], 'lease_expires_at_ms', 'published_at_ms', 'publishing_since_ms')
redis.call('HSET', KEYS[1], 'progress', '0')
redis.call('HINCRBY', KEYS[1], 'reclaims', 1)
return 1
"#;

/// ARGV: id, published_at_ms seen, the counter field (`requeues` or
/// `lost_messages`). Returns 1 when requeued.
const REQUEUE: &str = r#"
if not holds('QUEUED', 'published_at_ms', ARGV[2]) then
  return 0
end
transition(ARGV[1], 'requeue')
redis.call('HDEL', KEYS[1], 'published_at_ms', 'publishing_since_ms')
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
return 1
"#;

#[derive(Debug)]
struct Scripts {
    enqueue: Script,
    claim: Script,
    heartbeat: Script,
    release: Script,
    finish: Script,
    begin_publish: Script,
    end_publish: Script,
    reclaim: Script,
    requeue: Script,
}

impl Scripts {
    fn new() -> Self {
        let prelude = format!("local TRANSITIONS = {}\n{PRELUDE}", transitions_lua());
        let with_prelude = |body: &str| Script::new(&format!("{prelude}\n{body}"));
        Self {
            enqueue: with_prelude(ENQUEUE),
            claim: with_prelude(CLAIM),
            heartbeat: with_prelude(HEARTBEAT),
            release: with_prelude(RELEASE),
            finish: with_prelude(FINISH),
            begin_publish: Script::new(BEGIN_PUBLISH),
            end_publish: Script::new(END_PUBLISH),
            reclaim: with_prelude(RECLAIM),
            requeue: with_prelude(REQUEUE),
        }
    }
}

/// A token unique to one call, so a retried script can recognise its own
/// earlier attempt. 128 bits from the std hasher's per-process random keys.
fn call_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(count);
        hasher.write_u64(salt);
        hasher.write_u128(crate::clock::now_ms().into());
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

/// `f64` as Redis and the record keep it: the shortest exact decimal.
fn float(value: f64) -> String {
    value.to_string()
}

fn hotkey_of(job: &JobV1) -> Option<&str> {
    match &job.origin {
        JobOrigin::Chain { hotkey, .. } => Some(hotkey),
        JobOrigin::Operator { .. } => None,
    }
}

/// Errors worth another try on a (re)connected connection.
fn retryable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.retry_method(),
            RetryMethod::Reconnect
                | RetryMethod::ReconnectFromInitialConnections
                | RetryMethod::RetryImmediately
                | RetryMethod::WaitAndRetry
        )
}

fn corrupt(key: &str, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The Redis result store. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    manager_config: ConnectionManagerConfig,
    /// Set by the first successful connection ([`RedisStore::lazy`] starts
    /// without one); the manager reconnects on its own afterwards.
    connection: std::sync::Arc<tokio::sync::OnceCell<ConnectionManager>>,
    keys: Keys,
    scripts: std::sync::Arc<Scripts>,
    config: RedisConfig,
}

crate::debug_fields!(RedisStore { config });

impl RedisStore {
    /// Connects (retrying like any other operation) and returns the store.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let store = Self::lazy(config)?;
        store.ping().await?;
        Ok(store)
    }

    /// The store without connecting yet: every operation first connects if
    /// no connection was made so far (with the same retries). A process that
    /// must start while Redis is away (serving its probes and API) uses this.
    pub fn lazy(config: RedisConfig) -> Result<Self> {
        config.validate().map_err(StoreError::unavailable)?;
        let client = redis::Client::open(config.url.expose())
            .map_err(|e| StoreError::unavailable_from("invalid redis url", e))?;
        // The manager's own reconnects (a jittered backon builder inside the
        // redis crate) follow the same policy, from its default 100 ms.
        let (min_delay, max_delay) =
            retry::jittered_bounds(Duration::from_millis(100), config.retry_max_backoff);
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connection_timeout))
            .set_exponent_base(retry::FACTOR)
            .set_min_delay(min_delay)
            .set_max_delay(max_delay);
        Ok(Self {
            client,
            manager_config,
            connection: std::sync::Arc::new(tokio::sync::OnceCell::new()),
            keys: Keys {
                prefix: config.prefix.clone(),
            },
            scripts: std::sync::Arc::new(Scripts::new()),
            config,
        })
    }

    /// The shared connection, making the first one if needed.
    async fn manager(&self) -> RedisResult<ConnectionManager> {
        self.connection
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(self.client.clone(), self.manager_config.clone())
            })
            .await
            .cloned()
    }

    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Runs a prepared Lua script, retried like any command ([`Self::retrying`]).
    async fn run_script<T: FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T> {
        self.retrying(
            op,
            |mut c| async move { invocation.invoke_async(&mut c).await },
        )
        .await
    }

    /// Runs `op` on the connection, retrying dropped connections and timeouts.
    async fn retrying<T, F, Fut>(&self, op: &'static str, mut run: F) -> Result<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let mut backoff = Delays::new(Duration::from_millis(50), self.config.retry_max_backoff);
        let mut attempt = 1;
        loop {
            let ran = match self.manager().await {
                Ok(connection) => run(connection).await,
                Err(e) => Err(e),
            };
            match ran {
                Ok(value) => return Ok(value),
                Err(e) if retryable(&e) && attempt < self.config.retry_attempts => {
                    warn!(op, attempt, error = %e, "redis command failed, retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                    attempt += 1;
                }
                Err(e) => {
                    warn!(op, attempt, error = %e, "redis command failed");
                    return Err(StoreError::unavailable_from(op, e));
                }
            }
        }
    }

    /// Round trip to the server (for readiness probes).
    pub async fn ping(&self) -> Result<()> {
        self.retrying("ping", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(drop)
    }

    /// The server's id of the connection currently in use (`CLIENT ID`), for
    /// diagnostics: it changes when the connection manager reconnects.
    pub async fn connection_id(&self) -> Result<u64> {
        self.retrying("client id", |mut c| async move {
            redis::cmd("CLIENT").arg("ID").query_async(&mut c).await
        })
        .await
    }

    /// Ids of the jobs that came from a miner hotkey.
    pub async fn job_ids_for_hotkey(&self, hotkey: &str) -> Result<Vec<JobId>> {
        self.ids_in_set(&self.keys.hotkey(hotkey)).await
    }

    /// Ids of the jobs of a repository (any revision, template or profile).
    pub async fn job_ids_for_model(&self, namespace: &str, name: &str) -> Result<Vec<JobId>> {
        self.ids_in_set(&self.keys.model(namespace, name)).await
    }

    /// The records of `ids` (those of status `only`, when given), oldest first.
    async fn records_of(&self, ids: &[JobId], only: Option<JobStatus>) -> Result<Vec<JobRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let job_keys: Vec<String> = ids.iter().map(|id| self.keys.job(id)).collect();
        let hashes: Vec<HashMap<String, String>> = self
            .retrying("hgetall (pipelined)", |mut c| {
                let mut pipe = redis::pipe();
                for key in &job_keys {
                    pipe.cmd("HGETALL").arg(key);
                }
                async move { pipe.query_async(&mut c).await }
            })
            .await?;
        let mut records = Vec::with_capacity(hashes.len());
        for (key, fields) in job_keys.iter().zip(&hashes) {
            if fields.is_empty() {
                // Deleted by hand between the two reads; nothing to report.
                warn!(key = %key, status = ?only, "an index names a missing job record");
                continue;
            }
            // One undecodable record must not hide every other job from the
            // coordinator's reconciliation: report it and go on.
            match decode_record(key, fields) {
                Ok(record) if only.is_none_or(|s| record.status == s) => records.push(record),
                Ok(_) => {}
                Err(e) => error!(key = %key, error = %e, "skipping a corrupt job record"),
            }
        }
        sort_oldest_first(&mut records);
        Ok(records)
    }

    async fn ids_in_set(&self, key: &str) -> Result<Vec<JobId>> {
        let members: Vec<String> = self
            .retrying("smembers", |mut c| async move {
                redis::cmd("SMEMBERS").arg(key).query_async(&mut c).await
            })
            .await?;
        let mut ids = members
            .iter()
            .map(|m| {
                m.parse::<JobId>()
                    .map_err(|e| corrupt(key, format!("member `{m}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort();
        Ok(ids)
    }

    /// Deletes every key under the prefix (tests, decommissioning). Never
    /// call this on a live cluster's prefix.
    pub async fn delete_everything(&self) -> Result<u64> {
        let pattern = format!("{}:*", self.keys.prefix);
        let keys: Vec<String> = self
            .retrying("scan", |mut c| {
                let pattern = pattern.clone();
                async move {
                    let mut keys = Vec::new();
                    let mut cursor: u64 = 0;
                    loop {
                        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(500)
                            .query_async(&mut c)
                            .await?;
                        keys.extend(batch);
                        if next == 0 {
                            break Ok(keys);
                        }
                        cursor = next;
                    }
                }
            })
            .await?;
        let mut deleted = 0;
        for chunk in keys.chunks(500) {
            let n: u64 = self
                .retrying("del", |mut c| async move {
                    redis::cmd("DEL").arg(chunk).query_async(&mut c).await
                })
                .await?;
            deleted += n;
        }
        Ok(deleted)
    }

    /// The field/value pairs of a new QUEUED record.
    fn record_fields(job: &JobV1, token: &str) -> Vec<(&'static str, String)> {
        let message = JobMessage::V1(job.clone());
        let mut fields = vec![
            (
                "job",
                String::from_utf8(message.encode()).unwrap_or_default(),
            ),
            ("job_id", job.job_id.to_string()),
            ("namespace", job.model.namespace.clone()),
            ("name", job.model.name.clone()),
            ("revision", job.model.revision.clone()),
            ("chat_template", job.model.chat_template.clone()),
            ("profile", job.profile.clone()),
            ("queued_at_ms", job.queued_at_ms.to_string()),
            ("attempts", "0".into()),
            ("progress", "0".into()),
            ("enqueue_token", token.to_owned()),
        ];
        if let Some(hotkey) = hotkey_of(job) {
            fields.push(("hotkey", hotkey.to_owned()));
        }
        fields
    }

    /// Runs `script`, which moves job `id` between statuses (KEYS:
    /// [`Self::moving_keys`]; ARGV: the id, then what `args` adds). `true`
    /// when it moved the job.
    async fn move_job(
        &self,
        op: &'static str,
        script: &Script,
        id: &JobId,
        args: impl FnOnce(&mut ScriptInvocation<'_>),
    ) -> Result<bool> {
        let keys = self.moving_keys(id);
        let mut invocation = script.prepare_invoke();
        invocation.key(&keys).arg(id.as_str());
        args(&mut invocation);
        let moved: i64 = self.run_script(op, &invocation).await?;
        Ok(moved == 1)
    }

    /// KEYS of a script that moves job `id` between statuses: its record,
    /// then every status index.
    fn moving_keys(&self, id: &JobId) -> Vec<String> {
        let mut keys = vec![self.keys.job(id)];
        keys.extend(self.keys.statuses());
        keys
    }

    /// KEYS of the scripts that may create a record.
    fn creating_keys(&self, job: &JobV1) -> Vec<String> {
        let mut keys = self.moving_keys(&job.job_id);
        keys.push(self.keys.model(&job.model.namespace, &job.model.name));
        if let Some(hotkey) = hotkey_of(job) {
            keys.push(self.keys.hotkey(hotkey));
        }
        keys
    }

    async fn fetch(&self, id: &JobId) -> Result<Option<JobRecord>> {
        let key = self.keys.job(id);
        let fields: HashMap<String, String> = self
            .retrying("hgetall", |mut c| {
                let key = &key;
                async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await }
            })
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        decode_record(&key, &fields).map(Some)
    }
}

/// Builds a record from the hash's fields.
fn decode_record(key: &str, fields: &HashMap<String, String>) -> Result<JobRecord> {
    let text = |name: &str| fields.get(name).filter(|v| !v.is_empty());
    fn number<T: FromStr>(key: &str, name: &str, value: Option<&String>) -> Result<Option<T>>
    where
        T::Err: fmt::Display,
    {
        value
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| corrupt(key, format!("field `{name}` = `{v}`: {e}")))
            })
            .transpose()
    }
    let job = text("job").ok_or_else(|| corrupt(key, "field `job` is missing"))?;
    let job = JobMessage::decode(job.as_bytes())
        .map_err(|e| corrupt(key, format!("field `job`: {e}")))?
        .job()
        .clone();
    let status = text("status").ok_or_else(|| corrupt(key, "field `status` is missing"))?;
    let status = status
        .parse::<JobStatus>()
        .map_err(|_| corrupt(key, format!("unknown job status `{status}`")))?;
    let result = text("result")
        .map(|r| {
            ResultMessage::decode(r.as_bytes())
                .map(|m| m.result().clone())
                .map_err(|e| corrupt(key, format!("field `result`: {e}")))
        })
        .transpose()?;
    Ok(JobRecord {
        status,
        attempts: number(key, "attempts", text("attempts"))?.unwrap_or(0),
        worker: text("worker").cloned(),
        queued_at_ms: number(key, "queued_at_ms", text("queued_at_ms"))?
            .unwrap_or(job.queued_at_ms),
        started_at_ms: number(key, "started_at_ms", text("started_at_ms"))?,
        finished_at_ms: number(key, "finished_at_ms", text("finished_at_ms"))?,
        lease_expires_at_ms: number(key, "lease_expires_at_ms", text("lease_expires_at_ms"))?,
        progress: number(key, "progress", text("progress"))?.unwrap_or(0.0),
        result,
        published_at_ms: number(key, "published_at_ms", text("published_at_ms"))?,
        publish_attempts: number(key, "publish_attempts", text("publish_attempts"))?.unwrap_or(0),
        publishing_since_ms: number(key, "publishing_since_ms", text("publishing_since_ms"))?,
        reclaims: number(key, "reclaims", text("reclaims"))?.unwrap_or(0),
        requeues: number(key, "requeues", text("requeues"))?.unwrap_or(0),
        lost_messages: number(key, "lost_messages", text("lost_messages"))?.unwrap_or(0),
        job,
    })
}

/// Pairs a flat `[field, value, field, value, …]` reply.
fn pairs(flat: &[String]) -> HashMap<String, String> {
    flat.chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

#[async_trait]
impl ResultStore for RedisStore {
    async fn enqueue(&self, job: &JobV1) -> Result<Enqueued> {
        let token = call_token();
        let keys = self.creating_keys(job);
        let mut invocation = self.scripts.enqueue.prepare_invoke();
        invocation.key(&keys).arg(job.job_id.as_str()).arg(&token);
        for (field, value) in Self::record_fields(job, &token) {
            invocation.arg(field).arg(value);
        }
        let reply: Vec<String> = self.run_script("enqueue", &invocation).await?;
        match reply.split_first() {
            Some((tag, _)) if tag == "created" => {
                debug!(job_id = %job.job_id, "job enqueued");
                Ok(Enqueued::Created)
            }
            Some((tag, rest)) if tag == "exists" => {
                let record = decode_record(&keys[0], &pairs(rest))?;
                Ok(Enqueued::Exists(Box::new(record)))
            }
            _ => Err(corrupt(
                &keys[0],
                format!("unexpected enqueue reply {reply:?}"),
            )),
        }
    }

    async fn time_ms(&self) -> Result<u64> {
        let (seconds, micros): (u64, u64) = self
            .retrying("time", |mut c| async move {
                redis::cmd("TIME").query_async(&mut c).await
            })
            .await?;
        Ok(seconds * 1000 + micros / 1000)
    }

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>> {
        self.fetch(id).await
    }

    async fn claim(&self, job: &JobV1, lease: Lease<'_>) -> Result<Claim> {
        let token = call_token();
        let keys = self.creating_keys(job);
        let mut invocation = self.scripts.claim.prepare_invoke();
        invocation
            .key(&keys)
            .arg(job.job_id.as_str())
            .arg(&token)
            .arg(lease.worker)
            .arg(lease.from_ms)
            .arg(lease.until_ms());
        for (field, value) in Self::record_fields(job, &token) {
            invocation.arg(field).arg(value);
        }
        let reply: Vec<String> = self.run_script("claim", &invocation).await?;
        let bad = || corrupt(&keys[0], format!("unexpected claim reply {reply:?}"));
        match reply
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["finished"] => Ok(Claim::Finished),
            ["leased", holder, until_ms] => Ok(Claim::Leased {
                worker: (*holder).to_owned(),
                until_ms: until_ms.parse().map_err(|_| bad())?,
            }),
            ["claimed", _, "1"] => Ok(Claim::Recreated),
            ["claimed", attempt, _] => Ok(Claim::Claimed {
                attempt: attempt.parse().map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }

    async fn heartbeat(&self, id: &JobId, lease: Lease<'_>, progress: f64) -> Result<bool> {
        let key = self.keys.job(id);
        let progress = if progress.is_nan() {
            0.0
        } else {
            progress.clamp(0.0, 1.0)
        };
        let mut invocation = self.scripts.heartbeat.prepare_invoke();
        invocation
            .key(&key)
            .arg(lease.worker)
            .arg(float(progress))
            .arg(lease.until_ms());
        let renewed: i64 = self.run_script("heartbeat", &invocation).await?;
        Ok(renewed == 1)
    }

    async fn release(&self, id: &JobId, worker: &str) -> Result<()> {
        self.move_job("release", &self.scripts.release, id, |args| {
            args.arg(worker);
        })
        .await?;
        Ok(())
    }

    async fn finish(&self, message: &ResultMessage) -> Result<Finish> {
        let mut result = message.result().clone();
        let samples = result.take_samples();
        // JSON writes a non-finite number as `null`, which would not read back.
        if let Some(bad) = samples
            .iter()
            .find(|s| !s.similarity.is_finite() || s.vibe.is_some_and(|v| !v.is_finite()))
        {
            return Err(corrupt(
                &self.keys.samples(&result.job_id),
                format!(
                    "refusing a non-finite score of sample {}",
                    bad.conversation_id
                ),
            ));
        }
        let samples = if samples.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&samples).expect("finite sample records serialise")
        };
        let id = &result.job_id;
        let job_key = self.keys.job(id);
        let token = call_token();
        let mut fields: Vec<(&str, String)> = vec![
            (
                "result",
                String::from_utf8(ResultMessage::V1(result.clone()).encode()).unwrap_or_default(),
            ),
            ("worker", result.worker.clone()),
            ("finished_at_ms", result.finished_at_ms.to_string()),
            ("progress", "1".into()),
        ];
        let (status, total) = match &result.outcome {
            Outcome::Completed(scores) => {
                if !scores.total.is_finite() {
                    return Err(corrupt(
                        &job_key,
                        format!("refusing a non-finite total score {}", scores.total),
                    ));
                }
                let c = &scores.components;
                fields.extend([
                    ("score_similarity", float(c.similarity)),
                    ("score_vibe", float(c.vibe)),
                    ("score_latency", float(c.latency)),
                    ("score_size", float(c.size)),
                    ("total", float(scores.total)),
                ]);
                (JobStatus::Completed, float(scores.total))
            }
            Outcome::Failed(reason) => {
                fields.extend([
                    ("reason_code", reason.code.to_string()),
                    ("reason", reason.message.clone()),
                ]);
                (JobStatus::Failed, String::new())
            }
        };
        let mut keys = self.moving_keys(id);
        keys.push(self.keys.done(id));
        keys.push(self.keys.leaderboard());
        keys.push(self.keys.samples(id));
        let mut invocation = self.scripts.finish.prepare_invoke();
        invocation
            .key(&keys)
            .arg(id.as_str())
            .arg(&token)
            .arg(status.as_str())
            .arg(&total)
            .arg(&samples);
        for (field, value) in fields {
            invocation.arg(field).arg(value);
        }
        let reply: String = self.run_script("finish", &invocation).await?;
        match reply.as_str() {
            "recorded" => Ok(Finish::Recorded),
            "already" => Ok(Finish::AlreadyFinished),
            "missing" => Err(corrupt(
                &job_key,
                "finishing a job the store has never seen",
            )),
            other => Err(corrupt(
                &job_key,
                format!("unexpected finish reply `{other}`"),
            )),
        }
    }

    async fn samples(&self, id: &JobId) -> Result<Vec<SampleRecord>> {
        let key = self.keys.samples(id);
        let json: Option<String> = self
            .retrying("get samples", |mut c| {
                let key = &key;
                async move { redis::cmd("GET").arg(key).query_async(&mut c).await }
            })
            .await?;
        match json {
            None => Ok(Vec::new()),
            Some(json) => serde_json::from_str(&json).map_err(|e| corrupt(&key, e.to_string())),
        }
    }

    async fn begin_publish(&self, id: &JobId, check: PublishCheck) -> Result<Option<u32>> {
        let key = self.keys.job(id);
        let mut invocation = self.scripts.begin_publish.prepare_invoke();
        invocation
            .key(&key)
            .arg(check.now_ms)
            .arg(millis(check.stale_after));
        // A retry after a lost reply finds the publish begun and answers 0:
        // the job then waits `stale_after` before the next try, never twice.
        let attempt: u32 = self.run_script("begin_publish", &invocation).await?;
        Ok((attempt > 0).then_some(attempt))
    }

    async fn end_publish(&self, id: &JobId, attempt: u32, outcome: PublishOutcome) -> Result<()> {
        let key = self.keys.job(id);
        let published_at_ms = match outcome {
            PublishOutcome::Confirmed { at_ms } => at_ms.to_string(),
            PublishOutcome::Failed => String::new(),
        };
        let mut invocation = self.scripts.end_publish.prepare_invoke();
        invocation.key(&key).arg(attempt).arg(published_at_ms);
        let _: i64 = self.run_script("end_publish", &invocation).await?;
        Ok(())
    }

    async fn reclaim(&self, id: &JobId, lease_expires_at_ms: u64, now_ms: u64) -> Result<bool> {
        self.move_job("reclaim", &self.scripts.reclaim, id, |args| {
            args.arg(lease_expires_at_ms).arg(now_ms);
        })
        .await
    }

    async fn requeue(&self, id: &JobId, published_at_ms: u64) -> Result<bool> {
        self.move_job("requeue", &self.scripts.requeue, id, |args| {
            args.arg(published_at_ms).arg("requeues");
        })
        .await
    }

    async fn requeue_lost(&self, id: &JobId, published_at_ms: u64) -> Result<bool> {
        self.move_job("requeue", &self.scripts.requeue, id, |args| {
            args.arg(published_at_ms).arg("lost_messages");
        })
        .await
    }

    async fn jobs_of_hotkey(&self, hotkey: &str) -> Result<Vec<JobRecord>> {
        let ids = self.ids_in_set(&self.keys.hotkey(hotkey)).await?;
        self.records_of(&ids, None).await
    }

    async fn jobs_with_status(&self, status: JobStatus) -> Result<Vec<JobRecord>> {
        let ids = self.ids_in_set(&self.keys.status(status)).await?;
        self.records_of(&ids, Some(status)).await
    }

    async fn leaderboard(&self, limit: usize) -> Result<Vec<RankedJob>> {
        let key = self.keys.leaderboard();
        // The whole set (one entry per evaluated model: small), so ties are
        // ordered exactly like the in-memory store before truncating.
        let entries: Vec<(String, f64)> = self
            .retrying("zrange", |mut c| {
                let key = &key;
                async move {
                    redis::cmd("ZRANGE")
                        .arg(key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        let ranked = entries
            .into_iter()
            .map(|(member, total)| {
                let job_id = member
                    .parse::<JobId>()
                    .map_err(|e| corrupt(&key, format!("member `{member}`: {e}")))?;
                Ok(RankedJob { job_id, total })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(best_first(ranked, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_schema() {
        let keys = Keys {
            prefix: "eval".into(),
        };
        let id: JobId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        assert_eq!(keys.job(&id), "eval:job:0123456789abcdef0123456789abcdef");
        assert_eq!(keys.done(&id), "eval:done:0123456789abcdef0123456789abcdef");
        assert_eq!(
            keys.samples(&id),
            "eval:samples:0123456789abcdef0123456789abcdef"
        );
        assert_eq!(keys.leaderboard(), "eval:leaderboard");
        assert_eq!(keys.status(JobStatus::Running), "eval:status:RUNNING");
        assert_eq!(keys.hotkey("5Abc"), "eval:idx:hotkey:5Abc");
        assert_eq!(keys.model("Alice", "RP-7b"), "eval:idx:model:alice/rp-7b");
    }

    #[test]
    fn tokens_differ() {
        let tokens: std::collections::HashSet<_> = (0..1000).map(|_| call_token()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(tokens.iter().all(|t| t.len() == 32));
    }

    #[test]
    fn floats_round_trip() {
        for value in [0.0, 0.5, 0.75, 1.0, 0.1 + 0.2, 1e-9, 0.4775] {
            assert_eq!(float(value).parse::<f64>().unwrap(), value);
        }
    }

    #[test]
    fn config_validation_and_redaction() {
        assert!(RedisConfig::default().validate().is_ok());
        for prefix in ["", "has space", "a{b}"] {
            let config = RedisConfig {
                prefix: prefix.into(),
                ..RedisConfig::default()
            };
            assert!(config.validate().is_err(), "{prefix:?}");
        }
        let config = RedisConfig {
            url: "redis://:hunter2@h:6379/0".into(),
            ..RedisConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn corrupt_records_are_reported() {
        let mut fields = HashMap::new();
        fields.insert("status".to_owned(), "RUNNING".to_owned());
        let err = decode_record("k", &fields).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { ref key, .. } if key == "k"));
        fields.insert("job".to_owned(), "{not json".to_owned());
        assert!(decode_record("k", &fields).is_err());
    }
}
