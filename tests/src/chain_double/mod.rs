//! A local subtensor double: a JSON-RPC WebSocket server on 127.0.0.1 that
//! speaks the part of the Substrate RPC that subxt's legacy backend uses,
//! serves runtime metadata built from the Rust types in [`runtime`], holds
//! storage in memory and applies the extrinsics it receives. The client code
//! under test is the very code that talks to a live node.
//!
//! # What it mirrors
//! - Storage: `SubtensorModule.{SubnetworkN, Keys, Uids, BlockAtRegistration,
//!   ValidatorPermit, LastUpdate, WeightsSetRateLimit, CommitRevealWeightsEnabled,
//!   Tempo, RevealPeriodEpochs, WeightsVersionKey, Weights, WeightCommits}`,
//!   `Commitments.CommitmentOf`, `Timestamp.Now`, `System.{Number, Events}`.
//! - Calls: `Commitments.set_commitment`, `SubtensorModule.set_weights`,
//!   `commit_weights`, `reveal_weights` with subtensor's checks (registered
//!   hotkey, validator permit, `WeightsSetRateLimit` against `LastUpdate`,
//!   commit-reveal on ⇒ `set_weights` refused, reveal window by epoch, hash
//!   check, `max_upscale_to_u16`). Failures are `ExtrinsicFailed` events with
//!   a `DispatchError::Module` subxt decodes to `Pallet.Error`.
//! - Transactions: v4 signed extrinsics, sr25519 signatures verified against
//!   the signer payload (call, extra, spec/tx version, genesis, era birth
//!   block), nonces checked. Each accepted extrinsic is sealed into a new
//!   block at once and finalized (instant seal).
//!
//! # What it does not
//! State is not versioned: a read at an older block answers with the latest
//! state (events excepted, they are per block). One subnet. No fees, no
//! stake, no runtime APIs beyond `Core_version`, `Metadata_*` and
//! `AccountNonceApi_account_nonce`.
//!
//! # Control
//! Tests in-process call [`ChainDouble`]'s methods; a separate process uses
//! the RPC methods `double_register`, `double_advance`, `double_setCommitment`,
//! `double_setCommitReveal`, `double_setRateLimit`, `double_setTempo`,
//! `double_weights`, `double_block` (see [`rpc`]).

pub mod rpc;
pub mod runtime;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use parity_scale_codec::{Compact, Encode};
use sp_crypto_hashing::blake2_256;
use tokio::sync::broadcast;

use self::runtime::{
    AccountId32, CommitmentInfo, CommitmentsCall, CommitmentsError, CommitmentsEvent, Data,
    DispatchError, EventRecord, H256, Registration, RuntimeCall, RuntimeEvent, SubtensorCall,
    SubtensorError, SubtensorEvent, keys,
};

/// One block of the double's chain.
#[derive(Debug, Clone)]
pub struct Block {
    pub number: u64,
    pub hash: H256,
    pub parent: H256,
    pub extrinsics: Vec<Vec<u8>>,
    /// SCALE `Vec<EventRecord>`.
    pub events: Vec<u8>,
    pub timestamp_ms: u64,
}

impl Block {
    fn header_encoded(parent: &H256, number: u64) -> Vec<u8> {
        let mut out = parent.0.to_vec();
        Compact(number).encode_to(&mut out);
        out.extend_from_slice(&[0u8; 32]); // state root
        out.extend_from_slice(&[0u8; 32]); // extrinsics root
        Compact(0u32).encode_to(&mut out); // digest logs
        out
    }

    /// The header as `chain_getHeader` returns it.
    pub fn header_json(&self) -> serde_json::Value {
        serde_json::json!({
            "parentHash": hex0x(&self.parent.0),
            "number": format!("{:#x}", self.number),
            "stateRoot": hex0x(&[0u8; 32]),
            "extrinsicsRoot": hex0x(&[0u8; 32]),
            "digest": { "logs": [] },
        })
    }
}

pub fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

#[derive(Debug, Clone)]
struct Neuron {
    hotkey: AccountId32,
    registered_at: u64,
    permit: bool,
    last_update: u64,
}

type WeightCommit = (H256, u64, u64, u64);

/// A per-uid storage vector (`ValidatorPermit`, `LastUpdate`), encoded: `field`
/// of each neuron, in uid order.
fn per_uid<T: Encode>(neurons: &[Neuron], field: impl Fn(&Neuron) -> T) -> Vec<u8> {
    neurons.iter().map(field).collect::<Vec<_>>().encode()
}

/// The double's state; see the module docs.
#[derive(Debug)]
pub struct State {
    netuid: u16,
    blocks: Vec<Block>,
    neurons: Vec<Neuron>,
    weights: BTreeMap<u16, Vec<(u16, u16)>>,
    rate_limit: u64,
    commit_reveal: bool,
    tempo: u16,
    reveal_period: u64,
    version_key: u64,
    commits: BTreeMap<AccountId32, VecDeque<WeightCommit>>,
    commitments: BTreeMap<AccountId32, Registration>,
    nonces: HashMap<AccountId32, u32>,
    /// Extrinsics seen, by outcome, for tests.
    pub applied: Vec<(AccountId32, String, Result<(), String>)>,
}

/// Settings of a new double.
#[derive(Debug, Clone)]
pub struct DoubleConfig {
    pub netuid: u16,
    /// The chain starts with this many blocks after genesis.
    pub start_block: u64,
    pub weights_rate_limit: u64,
    pub tempo: u16,
}

impl Default for DoubleConfig {
    fn default() -> Self {
        Self {
            netuid: 11,
            start_block: 1_000,
            weights_rate_limit: 100,
            tempo: 360,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl State {
    fn new(config: &DoubleConfig) -> Self {
        let mut state = Self {
            netuid: config.netuid,
            blocks: Vec::new(),
            neurons: Vec::new(),
            weights: BTreeMap::new(),
            rate_limit: config.weights_rate_limit,
            commit_reveal: false,
            tempo: config.tempo,
            reveal_period: 1,
            version_key: 0,
            commits: BTreeMap::new(),
            commitments: BTreeMap::new(),
            nonces: HashMap::new(),
            applied: Vec::new(),
        };
        state.push_block(Vec::new(), Vec::new());
        for _ in 0..config.start_block {
            state.push_block(Vec::new(), Vec::new());
        }
        state
    }

    pub fn best(&self) -> &Block {
        self.blocks.last().expect("genesis exists")
    }

    pub fn block_number(&self) -> u64 {
        self.best().number
    }

    pub fn genesis(&self) -> H256 {
        self.blocks[0].hash
    }

    pub fn block_by_number(&self, number: u64) -> Option<&Block> {
        self.blocks.get(usize::try_from(number).ok()?)
    }

    pub fn block_by_hash(&self, hash: &H256) -> Option<&Block> {
        self.blocks.iter().rev().find(|b| &b.hash == hash)
    }

    fn push_block(&mut self, extrinsics: Vec<Vec<u8>>, events: Vec<EventRecord>) -> &Block {
        let (parent, number) = match self.blocks.last() {
            Some(b) => (b.hash, b.number + 1),
            None => (H256([0; 32]), 0),
        };
        let hash = H256(blake2_256(&Block::header_encoded(&parent, number)));
        self.blocks.push(Block {
            number,
            hash,
            parent,
            extrinsics,
            events: events.encode(),
            timestamp_ms: now_ms(),
        });
        self.blocks.last().expect("just pushed")
    }

    fn uid_of(&self, hotkey: &AccountId32) -> Option<u16> {
        self.neurons
            .iter()
            .position(|n| &n.hotkey == hotkey)
            .map(|i| i as u16)
    }

    fn epoch(&self, block: u64) -> u64 {
        (block + u64::from(self.netuid) + 1) / (u64::from(self.tempo) + 1)
    }

    fn first_block_of_epoch(&self, epoch: u64) -> u64 {
        (epoch * (u64::from(self.tempo) + 1)).saturating_sub(u64::from(self.netuid) + 1)
    }

    /// All storage at the best block, as raw key/value pairs.
    pub fn storage(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut out = BTreeMap::new();
        let netuid = self.netuid;
        let mut put = |key: Vec<u8>, value: Vec<u8>| {
            out.insert(key, value);
        };
        let by_netuid = |entry: &str| {
            let mut k = keys::prefix("SubtensorModule", entry);
            keys::identity(&mut k, &netuid);
            k
        };
        put(
            keys::prefix("System", "Number"),
            (self.block_number() as u32).encode(),
        );
        put(
            keys::prefix("Timestamp", "Now"),
            self.best().timestamp_ms.encode(),
        );
        put(
            by_netuid("SubnetworkN"),
            (self.neurons.len() as u16).encode(),
        );
        put(by_netuid("Tempo"), self.tempo.encode());
        put(by_netuid("WeightsSetRateLimit"), self.rate_limit.encode());
        put(
            by_netuid("CommitRevealWeightsEnabled"),
            self.commit_reveal.encode(),
        );
        put(by_netuid("RevealPeriodEpochs"), self.reveal_period.encode());
        put(by_netuid("WeightsVersionKey"), self.version_key.encode());
        put(
            by_netuid("ValidatorPermit"),
            per_uid(&self.neurons, |n| n.permit),
        );
        put(
            by_netuid("LastUpdate"),
            per_uid(&self.neurons, |n| n.last_update),
        );
        for (uid, neuron) in self.neurons.iter().enumerate() {
            let uid = uid as u16;
            let mut k = by_netuid("Keys");
            keys::identity(&mut k, &uid);
            put(k, neuron.hotkey.encode());
            let mut k = by_netuid("BlockAtRegistration");
            keys::identity(&mut k, &uid);
            put(k, neuron.registered_at.encode());
            let mut k = by_netuid("Uids");
            keys::blake2_128_concat(&mut k, &neuron.hotkey);
            put(k, uid.encode());
        }
        for (uid, weights) in &self.weights {
            let mut k = by_netuid("Weights");
            keys::identity(&mut k, uid);
            put(k, weights.encode());
        }
        for (who, commits) in &self.commits {
            let mut k = keys::prefix("SubtensorModule", "WeightCommits");
            keys::twox64_concat(&mut k, &netuid);
            keys::twox64_concat(&mut k, who);
            put(k, commits.encode());
        }
        for (who, registration) in &self.commitments {
            let mut k = keys::prefix("Commitments", "CommitmentOf");
            keys::identity(&mut k, &netuid);
            keys::twox64_concat(&mut k, who);
            put(k, registration.encode());
        }
        out
    }

    /// Reads one storage value at `at` (events are per block).
    pub fn storage_at(&self, key: &[u8], at: Option<&Block>) -> Option<Vec<u8>> {
        if key == keys::events().as_slice() {
            return Some(at.unwrap_or(self.best()).events.clone());
        }
        self.storage().get(key).cloned()
    }

    /// Applies a submitted extrinsic in a new block. `Err` means the pool
    /// refused it (bad encoding, signature or nonce): no block is made.
    pub fn submit(&mut self, bytes: &[u8]) -> Result<H256, String> {
        let ext = runtime::decode_extrinsic(bytes)?;
        let number = self.block_number() + 1;
        let birth = ext.era.birth(number);
        if number >= ext.era.death(number) {
            return Err("transaction is outdated".into());
        }
        let birth_hash = self
            .block_by_number(birth)
            .map(|b| b.hash)
            .ok_or("era birth block unknown")?;
        let payload = runtime::signer_payload(&ext, &self.genesis(), &birth_hash);
        let runtime::MultiSignature::Sr25519(sig) = &ext.signature else {
            return Err("only sr25519 signatures are accepted".into());
        };
        let valid = subxt_signer::sr25519::verify(
            &subxt_signer::sr25519::Signature(*sig),
            &payload,
            &subxt_signer::sr25519::PublicKey(ext.signer.0),
        );
        if !valid {
            return Err("bad signature".into());
        }
        let expected = self.nonces.get(&ext.signer).copied().unwrap_or(0);
        if ext.nonce != expected {
            return Err(format!("bad nonce {} (expected {expected})", ext.nonce));
        }
        self.nonces.insert(ext.signer, expected + 1);
        let name = call_name(&ext.call);
        let outcome = self.dispatch(&ext.signer, ext.call, number);
        self.applied.push((
            ext.signer,
            name,
            outcome.as_ref().map(|_| ()).map_err(|e| format!("{e:?}")),
        ));
        let events = runtime::extrinsic_events(0, &outcome);
        Ok(self.push_block(vec![bytes.to_vec()], events).hash)
    }

    fn dispatch(
        &mut self,
        who: &AccountId32,
        call: RuntimeCall,
        block: u64,
    ) -> Result<Vec<RuntimeEvent>, DispatchError> {
        match call {
            RuntimeCall::Commitments(CommitmentsCall::set_commitment { netuid, info }) => {
                if netuid != self.netuid || self.uid_of(who).is_none() {
                    return Err(CommitmentsError::AccountNotAllowedCommit.into());
                }
                if info.fields.len() > 3 {
                    return Err(CommitmentsError::TooManyFieldsInCommitmentInfo.into());
                }
                self.commitments.insert(
                    *who,
                    Registration {
                        deposit: 0,
                        block: block as u32,
                        info: *info,
                    },
                );
                Ok(vec![RuntimeEvent::Commitments(
                    CommitmentsEvent::Commitment { netuid, who: *who },
                )])
            }
            RuntimeCall::SubtensorModule(SubtensorCall::set_weights {
                netuid,
                dests,
                weights,
                version_key,
            }) => {
                if netuid == self.netuid && self.commit_reveal {
                    return Err(SubtensorError::CommitRevealEnabled.into());
                }
                self.do_set_weights(who, netuid, &dests, &weights, version_key, block)
            }
            RuntimeCall::SubtensorModule(SubtensorCall::commit_weights {
                netuid,
                commit_hash,
            }) => {
                self.commit_reveal_open(netuid)?;
                let uid = self
                    .uid_of(who)
                    .ok_or(SubtensorError::HotKeyNotRegisteredInSubNet)?;
                if !self.rate_limit_passed(uid, block) {
                    return Err(SubtensorError::CommittingWeightsTooFast.into());
                }
                let current_epoch = self.epoch(block);
                let reveal_period = self.reveal_period;
                let first = self.first_block_of_epoch(current_epoch + reveal_period);
                let last = self.first_block_of_epoch(current_epoch + reveal_period + 1) - 1;
                let queue = self.commits.entry(*who).or_default();
                queue.retain(|&(_, _, _, last_reveal)| last_reveal >= block);
                if queue.len() >= 10 {
                    return Err(SubtensorError::TooManyUnrevealedCommits.into());
                }
                queue.push_back((commit_hash, block, first, last));
                self.neurons[usize::from(uid)].last_update = block;
                Ok(vec![RuntimeEvent::SubtensorModule(
                    SubtensorEvent::WeightsCommitted(*who, netuid, commit_hash),
                )])
            }
            RuntimeCall::SubtensorModule(SubtensorCall::reveal_weights {
                netuid,
                uids,
                values,
                salt,
                version_key,
            }) => {
                self.commit_reveal_open(netuid)?;
                let hash = runtime::commit_hash(who, netuid, &uids, &values, &salt, version_key);
                let current_epoch = self.epoch(block);
                let reveal_period = self.reveal_period;
                let commit_epochs: Vec<(H256, u64)> = self
                    .commits
                    .get(who)
                    .ok_or(SubtensorError::NoWeightsCommitFound)?
                    .iter()
                    .map(|&(h, commit_block, _, _)| (h, self.epoch(commit_block)))
                    .collect();
                if commit_epochs.is_empty() {
                    return Err(SubtensorError::NoWeightsCommitFound.into());
                }
                let Some(position) = commit_epochs.iter().position(|(h, _)| *h == hash) else {
                    return Err(SubtensorError::InvalidRevealCommitHashNotMatch.into());
                };
                let commit_epoch = commit_epochs[position].1;
                if current_epoch < commit_epoch + reveal_period {
                    return Err(SubtensorError::RevealTooEarly.into());
                }
                if current_epoch > commit_epoch + reveal_period {
                    return Err(SubtensorError::ExpiredWeightCommit.into());
                }
                let mut events =
                    self.do_set_weights(who, netuid, &uids, &values, version_key, block)?;
                if let Some(queue) = self.commits.get_mut(who) {
                    queue.remove(position);
                    if queue.is_empty() {
                        self.commits.remove(who);
                    }
                }
                events.push(RuntimeEvent::SubtensorModule(
                    SubtensorEvent::WeightsRevealed(*who, netuid, hash),
                ));
                Ok(events)
            }
        }
    }

    /// What `commit_weights` and `reveal_weights` both require first: the subnet exists and
    /// has commit-reveal on.
    fn commit_reveal_open(&self, netuid: u16) -> Result<(), DispatchError> {
        if netuid != self.netuid {
            return Err(SubtensorError::SubNetworkDoesNotExist.into());
        }
        if !self.commit_reveal {
            return Err(SubtensorError::CommitRevealDisabled.into());
        }
        Ok(())
    }

    fn rate_limit_passed(&self, uid: u16, block: u64) -> bool {
        let last = self.neurons[usize::from(uid)].last_update;
        last == 0 || block.saturating_sub(last) >= self.rate_limit
    }

    fn do_set_weights(
        &mut self,
        who: &AccountId32,
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
        block: u64,
    ) -> Result<Vec<RuntimeEvent>, DispatchError> {
        if netuid != self.netuid {
            return Err(SubtensorError::SubNetworkDoesNotExist.into());
        }
        if uids.len() != values.len() {
            return Err(SubtensorError::WeightVecNotEqualSize.into());
        }
        let uid = self
            .uid_of(who)
            .ok_or(SubtensorError::HotKeyNotRegisteredInSubNet)?;
        if version_key < self.version_key {
            return Err(SubtensorError::IncorrectWeightVersionKey.into());
        }
        if !self.rate_limit_passed(uid, block) {
            return Err(SubtensorError::SettingWeightsTooFast.into());
        }
        let mut seen = std::collections::HashSet::new();
        if !uids.iter().all(|u| seen.insert(*u)) {
            return Err(SubtensorError::DuplicateUids.into());
        }
        if uids.iter().any(|&u| usize::from(u) >= self.neurons.len()) {
            return Err(SubtensorError::UidVecContainInvalidOne.into());
        }
        let self_weight_only = uids.len() == 1 && uids[0] == uid;
        if !self.neurons[usize::from(uid)].permit && !self_weight_only {
            return Err(SubtensorError::NeuronNoValidatorPermit.into());
        }
        let upscaled = runtime::max_upscale_to_u16(values);
        let zipped: Vec<(u16, u16)> = uids
            .iter()
            .copied()
            .zip(upscaled)
            .filter(|(_, w)| *w != 0)
            .collect();
        self.weights.insert(uid, zipped);
        self.neurons[usize::from(uid)].last_update = block;
        Ok(vec![RuntimeEvent::SubtensorModule(
            SubtensorEvent::WeightsSet(netuid, uid),
        )])
    }
}

fn call_name(call: &RuntimeCall) -> String {
    match call {
        RuntimeCall::SubtensorModule(SubtensorCall::set_weights { .. }) => "set_weights",
        RuntimeCall::SubtensorModule(SubtensorCall::commit_weights { .. }) => "commit_weights",
        RuntimeCall::SubtensorModule(SubtensorCall::reveal_weights { .. }) => "reveal_weights",
        RuntimeCall::Commitments(CommitmentsCall::set_commitment { .. }) => "set_commitment",
    }
    .to_owned()
}

/// Shared state plus the channel that announces new (finalized) blocks.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    heads: broadcast::Sender<serde_json::Value>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state and announces every block it added.
    pub fn mutate<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, new_heads) = {
            let mut state = self.lock();
            let before = state.blocks.len();
            let result = f(&mut state);
            let heads: Vec<serde_json::Value> = state.blocks[before..]
                .iter()
                .map(Block::header_json)
                .collect();
            (result, heads)
        };
        for head in new_heads {
            let _ = self.heads.send(head);
        }
        result
    }

    pub fn subscribe_heads(&self) -> broadcast::Receiver<serde_json::Value> {
        self.heads.subscribe()
    }
}

/// A running double. Dropping it stops the server.
#[derive(Debug)]
pub struct ChainDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<jsonrpsee::server::ServerHandle>,
}

impl ChainDouble {
    /// Starts a double listening on `listen` (port 0 picks a free port).
    pub async fn start(listen: SocketAddr, config: DoubleConfig) -> std::io::Result<Self> {
        let (heads, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(&config)),
            heads,
        });
        let (addr, server) = rpc::serve(listen, shared.clone()).await?;
        Ok(Self {
            shared,
            addr,
            server: Some(server),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops the server (connections drop); the state is kept.
    pub async fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop();
            server.stopped().await;
        }
    }

    /// Serves the same state again on the same address.
    pub async fn restart_server(&mut self) -> std::io::Result<()> {
        self.stop_server().await;
        let (_, server) = rpc::serve(self.addr, self.shared.clone()).await?;
        self.server = Some(server);
        Ok(())
    }

    /// Registers `hotkey` under the next uid at the current block.
    pub fn register(&self, hotkey: [u8; 32], validator_permit: bool) -> u16 {
        self.shared
            .mutate(|s| s.register(AccountId32(hotkey), validator_permit))
    }

    /// Adds `n` empty blocks; returns the new best block number.
    pub fn advance(&self, n: u64) -> u64 {
        self.shared.mutate(|s| {
            for _ in 0..n {
                s.push_block(Vec::new(), Vec::new());
            }
            s.block_number()
        })
    }

    pub fn block_number(&self) -> u64 {
        self.shared.lock().block_number()
    }

    /// Writes a commitment directly into storage (any bytes, any block).
    pub fn set_commitment(&self, hotkey: [u8; 32], data: &[u8], block: u64) {
        self.shared
            .mutate(|s| s.set_commitment(AccountId32(hotkey), data, block));
    }

    /// Writes a commitment of one field, raw or not, directly into storage.
    pub fn set_commitment_field(&self, hotkey: [u8; 32], field: runtime::Data, block: u64) {
        self.shared.mutate(|s| {
            s.commitments.insert(
                AccountId32(hotkey),
                Registration {
                    deposit: 0,
                    block: block as u32,
                    info: CommitmentInfo {
                        fields: vec![field],
                    },
                },
            );
        });
    }

    pub fn set_commit_reveal(&self, enabled: bool) {
        self.shared.mutate(|s| s.commit_reveal = enabled);
    }

    pub fn set_rate_limit(&self, blocks: u64) {
        self.shared.mutate(|s| s.rate_limit = blocks);
    }

    pub fn set_tempo(&self, tempo: u16) {
        self.shared.mutate(|s| s.tempo = tempo);
    }

    /// The weights row of `uid` as stored (normalised by the chain).
    pub fn weights(&self, uid: u16) -> Vec<(u16, u16)> {
        self.shared
            .lock()
            .weights
            .get(&uid)
            .cloned()
            .unwrap_or_default()
    }

    /// Unrevealed commits of `hotkey`: (hash, commit block, first and last reveal block).
    pub fn pending_commits(&self, hotkey: [u8; 32]) -> Vec<([u8; 32], u64, u64, u64)> {
        self.shared
            .lock()
            .commits
            .get(&AccountId32(hotkey))
            .map(|q| q.iter().map(|(h, a, b, c)| (h.0, *a, *b, *c)).collect())
            .unwrap_or_default()
    }

    /// Every extrinsic applied so far: signer, call name, outcome.
    pub fn applied(&self) -> Vec<([u8; 32], String, Result<(), String>)> {
        self.shared
            .lock()
            .applied
            .iter()
            .map(|(who, name, r)| (who.0, name.clone(), r.clone()))
            .collect()
    }
}

impl State {
    fn register(&mut self, hotkey: AccountId32, permit: bool) -> u16 {
        if let Some(uid) = self.uid_of(&hotkey) {
            return uid;
        }
        self.neurons.push(Neuron {
            hotkey,
            registered_at: self.block_number(),
            permit,
            last_update: 0,
        });
        (self.neurons.len() - 1) as u16
    }

    fn set_commitment(&mut self, who: AccountId32, data: &[u8], block: u64) {
        self.commitments.insert(
            who,
            Registration {
                deposit: 0,
                block: block as u32,
                info: CommitmentInfo {
                    fields: vec![Data::Raw(data.to_vec())],
                },
            },
        );
    }
}

impl Drop for ChainDouble {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop();
        }
    }
}
