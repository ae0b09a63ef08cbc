//! The subtensor client: [`Chain`] over subxt's dynamic API (docs/architecture.md §3).
//!
//! # Shape
//! - One WebSocket connection through subxt's *legacy* RPC backend (the
//!   `chain_*`/`state_*`/`author_*` methods every subtensor node serves).
//!   Storage is read at the latest finalized block; values are decoded into
//!   local types holding only the fields we use ([`decode`]), so runtime
//!   upgrades that touch other fields do not break the validator.
//! - A connection that fails is dropped and re-made on the next call, no
//!   sooner than a jittered exponential backoff ([`crate::retry`]: 1 s
//!   doubling to 60 s, each pause between half and all of that) allows;
//!   meanwhile calls fail fast with [`ChainError::Unavailable`] and the
//!   coordinator retries next tick. Reconnects are counted in the
//!   `reconnects` counter given in [`SubtensorOptions`].
//! - [`Chain::snapshot`] reads the metagraph (`SubnetworkN`, `Keys`,
//!   `BlockAtRegistration`, `ValidatorPermit`, `LastUpdate`), every
//!   `Commitments.CommitmentOf` of the netuid (one prefix iteration) and
//!   `Timestamp.Now` for the block-lag metric.
//! - [`Chain::set_weights`] checks registration, validator permit and
//!   `WeightsSetRateLimit` against `LastUpdate` before paying for an
//!   extrinsic, then sends `set_weights`, or, when the subnet has
//!   `CommitRevealWeightsEnabled`, `commit_weights` with a fresh salt kept in
//!   [`pending`] (written before submitting). [`Chain::reveal_due`] reveals
//!   each kept commit once the chain's `WeightCommits` entry says its window
//!   is open, and forgets those the chain no longer holds.
//! - A chain refusal is the decoded module error, `Pallet.Error`
//!   (e.g. `SubtensorModule.SettingWeightsTooFast`); the client-side checks
//!   name the error the chain would answer.
//!
//! Secrets: the hotkey signs; it is never logged ([`keys::Hotkey`]'s Debug).

pub mod decode;
pub mod keys;
pub mod pending;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use subxt::backend::LegacyBackend;
use subxt::client::{ClientAtBlock, OnlineClientAtBlockImpl};
use subxt::dynamic::{self, Value};
use subxt::utils::AccountId32;
use subxt::{OnlineClient, PolkadotConfig};
use tracing::{info, warn};

pub use self::keys::{Hotkey, KeyError, wallet_hotkey_path};
use self::pending::{PendingCommit, PendingCommits, WeightReveal};
use super::{Chain, ChainError, ChainSnapshot, Neuron, WeightsAction, WeightsReceipt};
use crate::chain_weights::U16Weights;
use crate::retry::Delays;
use crate::submission::{MAX_COMMIT_BYTES, RawCommitment};

type Client = OnlineClient<PolkadotConfig>;
type AtBlock = ClientAtBlock<PolkadotConfig, OnlineClientAtBlockImpl<PolkadotConfig>>;

/// The endpoint of a `--subtensor.network` name or URL.
pub fn network_url(network: &str) -> Result<String, String> {
    match network {
        "finney" => Ok("wss://entrypoint-finney.opentensor.ai:443".into()),
        "test" => Ok("wss://test.finney.opentensor.ai:443".into()),
        "local" => Ok("ws://127.0.0.1:9944".into()),
        url if url.starts_with("ws://") || url.starts_with("wss://") => Ok(url.to_owned()),
        other => Err(format!(
            "unknown subtensor network `{other}`: use finney, test, local or a ws:// / wss:// URL"
        )),
    }
}

/// Settings of the client.
#[derive(Debug, Clone)]
pub struct SubtensorOptions {
    /// `ws://` or `wss://` endpoint (see [`network_url`]).
    pub url: String,
    pub netuid: u16,
    /// Where pending weight commits are kept (`weight_commits.json`);
    /// `None` keeps them in memory (for clients that never commit weights).
    pub state_dir: Option<PathBuf>,
    /// Check permit and rate limit before submitting weights (saves the fee
    /// of an extrinsic the chain would refuse). Tests turn it off to see the
    /// chain's own refusal.
    pub precheck: bool,
    /// Counts re-established connections (`eval_coordinator_chain_reconnects_total`).
    pub reconnects: Option<prometheus::IntCounter>,
    /// How long one RPC-backed operation may take before it counts as unavailable.
    pub call_timeout: Duration,
}

impl SubtensorOptions {
    pub fn new(url: impl Into<String>, netuid: u16, state_dir: Option<PathBuf>) -> Self {
        Self {
            url: url.into(),
            netuid,
            state_dir,
            precheck: true,
            reconnects: None,
            call_timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Debug)]
struct Connection {
    client: Option<Client>,
    /// Set after a failure: no new attempt before this instant.
    retry_at: Option<Instant>,
    /// Pauses after failed attempts; restarted by a success.
    backoff: Delays,
    /// Whether a connection existed before (the next success is a reconnect).
    had_connection: bool,
}

/// Pauses between reconnects: 1 s doubling to 60 s, jittered.
fn reconnect_delays() -> Delays {
    Delays::new(Duration::from_secs(1), Duration::from_secs(60))
}

/// See the module docs.
#[derive(Debug)]
pub struct SubtensorChain {
    options: SubtensorOptions,
    hotkey: Option<Hotkey>,
    connection: tokio::sync::Mutex<Connection>,
    pending: tokio::sync::Mutex<PendingCommits>,
    /// (hotkey, fingerprint of the stored value) of the unreadable
    /// commitments already warned about.
    warned_unreadable: parking_lot::Mutex<HashSet<(String, [u8; 16])>>,
}

/// A commitment that is not raw bytes, as read.
#[derive(Debug)]
struct Unreadable {
    uid: u16,
    hotkey: String,
    /// blake2_128 of the storage value: a new commitment is a new warning.
    fingerprint: [u8; 16],
    error: decode::CommitmentDecodeError,
}

fn unavailable(context: &str, e: impl std::fmt::Display) -> ChainError {
    ChainError::Unavailable(format!("{context}: {e}"))
}

impl SubtensorChain {
    /// A client for `options`, signing with `hotkey` (needed to set weights
    /// or commit; reading works without). Connects lazily; call
    /// [`SubtensorChain::check_connection`] to fail fast at start.
    pub fn new(options: SubtensorOptions, hotkey: Option<Hotkey>) -> Result<Self, ChainError> {
        let pending = match &options.state_dir {
            Some(dir) => PendingCommits::open(dir)
                .map_err(|e| ChainError::Unavailable(format!("commit-reveal state: {e}")))?,
            None => PendingCommits::in_memory(),
        };
        Ok(Self {
            options,
            hotkey,
            connection: tokio::sync::Mutex::new(Connection {
                client: None,
                retry_at: None,
                backoff: reconnect_delays(),
                had_connection: false,
            }),
            pending: tokio::sync::Mutex::new(pending),
            warned_unreadable: parking_lot::Mutex::new(HashSet::new()),
        })
    }

    pub fn hotkey(&self) -> Option<&Hotkey> {
        self.hotkey.as_ref()
    }

    /// Connects now (or reports why not) and returns the best finalized block.
    pub async fn check_connection(&self) -> Result<u64, ChainError> {
        let at = self.at_latest().await?;
        Ok(at.block_number())
    }

    async fn connect(url: &str) -> Result<Client, ChainError> {
        let rpc = subxt_rpcs::RpcClient::from_insecure_url(url)
            .await
            .map_err(|e| unavailable("connecting", e))?;
        let backend = LegacyBackend::<PolkadotConfig>::builder().build(rpc);
        OnlineClient::from_backend(Arc::new(backend))
            .await
            .map_err(|e| unavailable("connecting", e))
    }

    async fn client(&self) -> Result<Client, ChainError> {
        let mut conn = self.connection.lock().await;
        if let Some(client) = &conn.client {
            return Ok(client.clone());
        }
        if let Some(at) = conn.retry_at
            && Instant::now() < at
        {
            return Err(ChainError::Unavailable(format!(
                "reconnecting to {} in {:?}",
                self.options.url,
                at - Instant::now()
            )));
        }
        match tokio::time::timeout(self.options.call_timeout, Self::connect(&self.options.url))
            .await
            .unwrap_or_else(|_| Err(ChainError::Unavailable("connecting timed out".into())))
        {
            Ok(client) => {
                if conn.had_connection {
                    info!(url = %self.options.url, "chain connection re-established");
                    if let Some(counter) = &self.options.reconnects {
                        counter.inc();
                    }
                }
                conn.client = Some(client.clone());
                conn.had_connection = true;
                conn.retry_at = None;
                conn.backoff = reconnect_delays();
                Ok(client)
            }
            Err(e) => {
                let delay = conn.backoff.next_delay();
                conn.retry_at = Some(Instant::now() + delay);
                warn!(url = %self.options.url, error = %e, retry_in = ?delay, "chain connection failed");
                Err(e)
            }
        }
    }

    /// Drops the connection after a transport failure; the next call reconnects.
    async fn connection_failed(&self, error: &ChainError) {
        if !error.is_transient() {
            return;
        }
        let mut conn = self.connection.lock().await;
        if conn.client.take().is_some() {
            warn!(error = %error, "chain connection dropped, reconnecting");
        }
    }

    /// Runs `op`, dropping the connection if it fails for a transient cause.
    async fn with_client<T, F, Fut>(&self, op: F) -> Result<T, ChainError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ChainError>>,
    {
        let client = self.client().await?;
        let result = tokio::time::timeout(self.options.call_timeout, op(client))
            .await
            .unwrap_or_else(|_| Err(ChainError::Unavailable("chain call timed out".into())));
        if let Err(e) = &result {
            self.connection_failed(e).await;
        }
        result
    }

    async fn at_latest(&self) -> Result<AtBlock, ChainError> {
        self.with_client(|client| async move {
            client
                .at_current_block()
                .await
                .map_err(|e| unavailable("reading the finalized block", e))
        })
        .await
    }

    fn signer(&self) -> Result<&Hotkey, ChainError> {
        self.hotkey.as_ref().ok_or_else(|| {
            ChainError::Refused("no hotkey configured: cannot sign extrinsics".into())
        })
    }

    /// Submits `call` signed by the hotkey and waits for finalization;
    /// returns the block it was included in.
    async fn submit<C>(&self, call: C) -> Result<u64, ChainError>
    where
        C: subxt::transactions::Payload + Send + Sync,
    {
        let signer = self.signer()?.clone();
        self.with_client(|client| async move {
            let at = client
                .at_current_block()
                .await
                .map_err(|e| unavailable("reading the finalized block", e))?;
            let progress = at
                .transactions()
                .sign_and_submit_then_watch_default(&call, &signer)
                .await
                .map_err(classify_submit_error)?;
            let in_block = progress
                .wait_for_finalized()
                .await
                .map_err(|e| ChainError::Refused(format!("transaction not finalized: {e}")))?;
            let block = in_block
                .at()
                .await
                .map_err(|e| unavailable("reading the inclusion block", e))?
                .block_number();
            match in_block.wait_for_success().await {
                Ok(_) => Ok(block),
                Err(subxt::error::TransactionEventsError::ExtrinsicFailed(e)) => {
                    Err(ChainError::Refused(dispatch_error_name(&e)))
                }
                Err(e) => Err(unavailable("reading the transaction's events", e)),
            }
        })
        .await
    }

    /// Commits `commit` (at most 128 bytes) as this hotkey's
    /// `Commitments.set_commitment(netuid, Raw)`; returns the inclusion block.
    pub async fn set_commitment(&self, commit: &[u8]) -> Result<u64, ChainError> {
        if commit.len() > MAX_COMMIT_BYTES {
            return Err(ChainError::Refused(format!(
                "commitment is {} bytes, more than {MAX_COMMIT_BYTES}",
                commit.len()
            )));
        }
        let data =
            Value::unnamed_variant(format!("Raw{}", commit.len()), [Value::from_bytes(commit)]);
        let info = Value::named_composite([("fields", Value::unnamed_composite([data]))]);
        let call = dynamic::tx("Commitments", "set_commitment", (self.options.netuid, info));
        self.submit(call).await
    }

    async fn fetch_u64_vec(at: &AtBlock, entry: &str, netuid: u16) -> Result<Vec<u64>, ChainError> {
        let addr = dynamic::storage::<(u16,), Vec<u64>>("SubtensorModule", entry);
        match at.storage().try_fetch(addr, (netuid,)).await {
            Ok(Some(v)) => v.decode_as().map_err(|e| unavailable(entry, e)),
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(unavailable(entry, e)),
        }
    }

    async fn fetch_bool_vec(
        at: &AtBlock,
        entry: &str,
        netuid: u16,
    ) -> Result<Vec<bool>, ChainError> {
        let addr = dynamic::storage::<(u16,), Vec<bool>>("SubtensorModule", entry);
        match at.storage().try_fetch(addr, (netuid,)).await {
            Ok(Some(v)) => v.decode_as().map_err(|e| unavailable(entry, e)),
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(unavailable(entry, e)),
        }
    }

    async fn fetch_netuid_value<V>(
        at: &AtBlock,
        entry: &str,
        netuid: u16,
    ) -> Result<Option<V>, ChainError>
    where
        V: subxt::ext::scale_decode::DecodeAsType,
    {
        let addr = dynamic::storage::<(u16,), V>("SubtensorModule", entry);
        match at.storage().try_fetch(addr, (netuid,)).await {
            Ok(Some(v)) => v.decode_as().map(Some).map_err(|e| unavailable(entry, e)),
            Ok(None) => Ok(None),
            Err(e) => Err(unavailable(entry, e)),
        }
    }

    /// Every value of the `(netuid, uid)` map `entry` under `netuid`, by uid, in one
    /// prefix iteration. An entry whose uid does not decode is skipped.
    async fn fetch_by_uid<V>(
        at: &AtBlock,
        entry: &str,
        netuid: u16,
    ) -> Result<BTreeMap<u16, V>, ChainError>
    where
        V: subxt::ext::scale_decode::DecodeAsType,
    {
        let addr = dynamic::storage::<(u16, u16), V>("SubtensorModule", entry);
        let storage = at
            .storage()
            .entry(addr)
            .map_err(|e| unavailable(entry, e))?;
        let mut iter = storage
            .iter((netuid,))
            .await
            .map_err(|e| unavailable(entry, e))?;
        let mut values = BTreeMap::new();
        while let Some(kv) = iter.next().await {
            let kv = kv.map_err(|e| unavailable(entry, e))?;
            let key = kv
                .key()
                .map_err(|e| unavailable(&format!("{entry} key"), e))?;
            let Some(uid) = key
                .part(1)
                .and_then(|p| p.decode_as::<u16>().ok().flatten())
            else {
                continue;
            };
            let value = kv.value().decode_as().map_err(|e| unavailable(entry, e))?;
            values.insert(uid, value);
        }
        Ok(values)
    }

    /// The snapshot at `at`, and the commitments in it that are not raw bytes.
    async fn read_snapshot(
        at: &AtBlock,
        netuid: u16,
    ) -> Result<(ChainSnapshot, Vec<Unreadable>), ChainError> {
        let block = at.block_number();
        let hotkeys: BTreeMap<u16, AccountId32> = Self::fetch_by_uid(at, "Keys", netuid).await?;
        let registered: BTreeMap<u16, u64> =
            Self::fetch_by_uid(at, "BlockAtRegistration", netuid).await?;
        let permits = Self::fetch_bool_vec(at, "ValidatorPermit", netuid).await?;
        let last_update = Self::fetch_u64_vec(at, "LastUpdate", netuid).await?;
        let neurons: Vec<Neuron> = hotkeys
            .iter()
            .map(|(&uid, hotkey)| Neuron {
                uid,
                hotkey: hotkey.to_string(),
                registered_at_block: registered.get(&uid).copied().unwrap_or_default(),
                validator_permit: permits.get(usize::from(uid)).copied().unwrap_or(false),
                last_update: last_update.get(usize::from(uid)).copied().unwrap_or(0),
            })
            .collect();

        // Every commitment of the netuid.
        let uid_of: std::collections::HashMap<String, u16> =
            neurons.iter().map(|n| (n.hotkey.clone(), n.uid)).collect();
        let commit_addr =
            dynamic::storage::<(u16, AccountId32), Value>("Commitments", "CommitmentOf");
        let entry = at
            .storage()
            .entry(commit_addr)
            .map_err(|e| unavailable("CommitmentOf", e))?;
        let mut iter = entry
            .iter((netuid,))
            .await
            .map_err(|e| unavailable("CommitmentOf", e))?;
        let mut commitments = Vec::new();
        let mut unreadable = Vec::new();
        let types = at.metadata_ref().types();
        while let Some(kv) = iter.next().await {
            let kv = kv.map_err(|e| unavailable("CommitmentOf", e))?;
            let key = kv.key().map_err(|e| unavailable("CommitmentOf key", e))?;
            let Some(account) = key
                .part(1)
                .and_then(|p| p.decode_as::<AccountId32>().ok().flatten())
            else {
                continue;
            };
            let hotkey = account.to_string();
            let Some(&uid) = uid_of.get(&hotkey) else {
                continue; // deregistered since it committed
            };
            let value = kv.value();
            match decode::decode_commitment(value.bytes(), value.type_id(), types) {
                Ok(decoded) => commitments.push(RawCommitment {
                    uid,
                    hotkey,
                    block: decoded.block,
                    data: decoded.data,
                    not_raw: None,
                }),
                Err(e) => {
                    unreadable.push(Unreadable {
                        uid,
                        hotkey: hotkey.clone(),
                        fingerprint: sp_crypto_hashing::blake2_128(value.bytes()),
                        error: e.clone(),
                    });
                    commitments.push(RawCommitment {
                        uid,
                        hotkey,
                        block: e.block().unwrap_or(block),
                        data: Vec::new(),
                        not_raw: Some(e.found()),
                    });
                }
            }
        }
        let timestamp_ms = match at
            .storage()
            .try_fetch(dynamic::storage::<(), u64>("Timestamp", "Now"), ())
            .await
        {
            Ok(Some(v)) => v.decode_as::<u64>().ok(),
            _ => None,
        };
        Ok((
            ChainSnapshot {
                block,
                neurons,
                commitments,
                timestamp_ms,
            },
            unreadable,
        ))
    }

    /// Warns about each unreadable commitment once (a miner's `Sha256`
    /// commitment stays on chain for every poll); forgets those gone from
    /// chain, so the set stays as small as the subnet.
    fn warn_unreadable(&self, unreadable: Vec<Unreadable>) {
        let mut warned = self.warned_unreadable.lock();
        let current: HashSet<(String, [u8; 16])> = unreadable
            .iter()
            .map(|u| (u.hotkey.clone(), u.fingerprint))
            .collect();
        for u in &unreadable {
            if !warned.contains(&(u.hotkey.clone(), u.fingerprint)) {
                warn!(uid = u.uid, hotkey = %u.hotkey, error = %u.error, "commitment is not raw bytes");
            }
        }
        *warned = current;
    }

    /// Client-side checks of what the chain would refuse anyway, named as
    /// the chain names them: `commit_weights` refuses a too early call with
    /// `CommittingWeightsTooFast`, `set_weights` with `SettingWeightsTooFast`.
    /// Checked for the signing hotkey.
    async fn precheck(&self, at: &AtBlock, commit_reveal: bool) -> Result<(), ChainError> {
        let hotkey = self.signer()?;
        let netuid = self.options.netuid;
        let account = AccountId32(hotkey.public_key());
        let uids_addr = dynamic::storage::<(u16, AccountId32), u16>("SubtensorModule", "Uids");
        let uid: u16 = match at.storage().try_fetch(uids_addr, (netuid, account)).await {
            Ok(Some(v)) => v.decode_as().map_err(|e| unavailable("Uids", e))?,
            Ok(None) => {
                return Err(ChainError::Refused(format!(
                    "SubtensorModule.HotKeyNotRegisteredInSubNet (checked before submitting: {} has no uid on netuid {netuid})",
                    hotkey.ss58()
                )));
            }
            Err(e) => return Err(unavailable("Uids", e)),
        };
        let permits = Self::fetch_bool_vec(at, "ValidatorPermit", netuid).await?;
        if !permits.get(usize::from(uid)).copied().unwrap_or(false) {
            return Err(ChainError::Refused(format!(
                "SubtensorModule.NeuronNoValidatorPermit (checked before submitting: uid {uid})"
            )));
        }
        let last_update = Self::fetch_u64_vec(at, "LastUpdate", netuid).await?;
        let last = last_update.get(usize::from(uid)).copied().unwrap_or(0);
        let limit: u64 = Self::fetch_netuid_value(at, "WeightsSetRateLimit", netuid)
            .await?
            .unwrap_or(100);
        let block = at.block_number();
        if last != 0 && block.saturating_sub(last) < limit {
            let error = if commit_reveal {
                "CommittingWeightsTooFast"
            } else {
                "SettingWeightsTooFast"
            };
            return Err(ChainError::Refused(format!(
                "SubtensorModule.{error} (checked before submitting: last update at block {last}, rate limit {limit}, next allowed at block {})",
                last + limit
            )));
        }
        Ok(())
    }
}

/// The extrinsic `SubtensorModule.<function>`, its arguments `fields` in the
/// call's order.
fn subtensor_call<F>(function: &'static str, fields: F) -> subxt::transactions::DynamicPayload<F> {
    dynamic::tx("SubtensorModule", function, fields)
}

/// `Pallet.Error` of a dispatch error.
fn dispatch_error_name(e: &subxt::error::DispatchError) -> String {
    match e {
        subxt::error::DispatchError::Module(module) => match module.details() {
            Ok(d) => format!("{}.{}", d.pallet.name(), d.variant.name),
            Err(_) => module.to_string(),
        },
        other => other.to_string(),
    }
}

/// The pool refusing a transaction (bad nonce, signature, era) is a refusal;
/// anything else on the way there is the connection.
fn classify_submit_error(e: subxt::error::ExtrinsicError) -> ChainError {
    let text = e.to_string();
    if text.contains("Invalid Transaction") || text.contains("1010") {
        ChainError::Refused(format!("transaction refused by the pool: {text}"))
    } else {
        ChainError::Unavailable(format!("submitting: {text}"))
    }
}

fn new_salt() -> Vec<u16> {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..8).map(|_| rng.random()).collect()
}

#[async_trait]
impl Chain for SubtensorChain {
    async fn snapshot(&self) -> Result<ChainSnapshot, ChainError> {
        let netuid = self.options.netuid;
        let (snapshot, unreadable) = self
            .with_client(|client| async move {
                let at = client
                    .at_current_block()
                    .await
                    .map_err(|e| unavailable("reading the finalized block", e))?;
                Self::read_snapshot(&at, netuid).await
            })
            .await?;
        self.warn_unreadable(unreadable);
        Ok(snapshot)
    }

    async fn set_weights(
        &self,
        weights: &U16Weights,
        version_key: u64,
    ) -> Result<WeightsReceipt, ChainError> {
        let hotkey = self.signer()?.clone();
        let netuid = self.options.netuid;
        let at = self.at_latest().await?;
        let commit_reveal: bool =
            Self::fetch_netuid_value(&at, "CommitRevealWeightsEnabled", netuid)
                .await?
                .unwrap_or(false);
        if self.options.precheck {
            self.precheck(&at, commit_reveal).await?;
        }
        if !commit_reveal {
            let call = subtensor_call(
                "set_weights",
                (
                    netuid,
                    weights.uids.clone(),
                    weights.weights.clone(),
                    version_key,
                ),
            );
            let block = self.submit(call).await?;
            return Ok(WeightsReceipt {
                block,
                action: WeightsAction::Set,
            });
        }
        let reveal = WeightReveal {
            uids: weights.uids.clone(),
            values: weights.weights.clone(),
            salt: new_salt(),
            version_key,
        };
        let hash = reveal.hash(&hotkey.public_key(), netuid);
        let hash_hex = hex::encode(hash);
        let mut pending = self.pending.lock().await;
        pending
            .add(PendingCommit {
                netuid,
                hotkey: hotkey.ss58().to_owned(),
                hash: hash_hex.clone(),
                reveal,
                commit_block: None,
            })
            .map_err(|e| ChainError::Unavailable(format!("saving the commit's salt: {e}")))?;
        let call = subtensor_call("commit_weights", (netuid, hash));
        match self.submit(call).await {
            Ok(block) => {
                if let Err(e) = pending.set_commit_block(&hash_hex, block) {
                    warn!(error = %e, "could not record the commit block");
                }
                info!(block, hash = %hash_hex, "weights committed");
                Ok(WeightsReceipt {
                    block,
                    action: WeightsAction::Committed,
                })
            }
            Err(e) => {
                // Refused: no commit exists on chain, the salt is useless.
                // Unavailable: the commit may or may not be on chain; keep the
                // salt, `reveal_due` drops it if the chain never saw it.
                if !e.is_transient()
                    && let Err(save) = pending.remove(&hash_hex)
                {
                    warn!(error = %save, "could not drop a refused commit");
                }
                Err(e)
            }
        }
    }

    async fn reveal_due(&self) -> Result<Vec<Result<WeightsReceipt, ChainError>>, ChainError> {
        let Some(hotkey) = self.hotkey.clone() else {
            return Ok(Vec::new());
        };
        let netuid = self.options.netuid;
        let mine: Vec<PendingCommit> = self
            .pending
            .lock()
            .await
            .all()
            .iter()
            .filter(|c| c.netuid == netuid && c.hotkey == hotkey.ss58())
            .cloned()
            .collect();
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        let at = self.at_latest().await?;
        let block = at.block_number();
        let addr = dynamic::storage::<(u16, AccountId32), Vec<([u8; 32], u64, u64, u64)>>(
            "SubtensorModule",
            "WeightCommits",
        );
        let on_chain = match at
            .storage()
            .try_fetch(addr, (netuid, AccountId32(hotkey.public_key())))
            .await
        {
            Ok(Some(v)) => v
                .decode_as::<Vec<([u8; 32], u64, u64, u64)>>()
                .map_err(|e| unavailable("WeightCommits", e))?,
            Ok(None) => Vec::new(),
            Err(e) => return Err(unavailable("WeightCommits", e)),
        };
        let mut outcomes = Vec::new();
        for commit in mine {
            let entry = on_chain
                .iter()
                .find(|(h, ..)| hex::encode(h) == commit.hash);
            let Some(&(_, commit_block, first_reveal, last_reveal)) = entry else {
                if commit.commit_block.is_some_and(|b| b <= block) || commit.commit_block.is_none()
                {
                    warn!(hash = %commit.hash, "the chain holds no such commit (revealed, expired or never included), forgetting it");
                    let _ = self.pending.lock().await.remove(&commit.hash);
                }
                continue;
            };
            // The reveal lands in the next block at the earliest.
            if block + 1 < first_reveal {
                continue;
            }
            if block + 1 > last_reveal {
                warn!(hash = %commit.hash, commit_block, last_reveal, "reveal window missed, forgetting the commit");
                let _ = self.pending.lock().await.remove(&commit.hash);
                outcomes.push(Err(ChainError::Refused(format!(
                    "SubtensorModule.ExpiredWeightCommit (reveal window ended at block {last_reveal})"
                ))));
                continue;
            }
            let WeightReveal {
                uids,
                values,
                salt,
                version_key,
            } = commit.reveal.clone();
            let call = subtensor_call("reveal_weights", (netuid, uids, values, salt, version_key));
            match self.submit(call).await {
                Ok(b) => {
                    info!(block = b, hash = %commit.hash, "weights revealed");
                    let _ = self.pending.lock().await.remove(&commit.hash);
                    outcomes.push(Ok(WeightsReceipt {
                        block: b,
                        action: WeightsAction::Revealed,
                    }));
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    warn!(hash = %commit.hash, error = %e, "reveal refused");
                    if !e.to_string().contains("RevealTooEarly") {
                        let _ = self.pending.lock().await.remove(&commit.hash);
                    }
                    outcomes.push(Err(e));
                }
            }
        }
        Ok(outcomes)
    }
}
