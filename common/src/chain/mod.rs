//! The validator's view of the chain (docs/architecture.md §3): the metagraph, the
//! miners' commitments, and setting weights.
//!
//! [`Chain`] is what the coordinator needs; the subxt client
//! (`subtensor::SubtensorChain`, feature `subtensor`) and [`MemoryChain`]
//! implement it. Reads are snapshots at one block, so the
//! validity rules always see a consistent state.

mod memory;
#[cfg(feature = "subtensor")]
pub mod subtensor;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::memory::MemoryChain;
use crate::chain_weights::U16Weights;
use crate::submission::RawCommitment;

/// A registered uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neuron {
    pub uid: u16,
    pub hotkey: String,
    pub registered_at_block: u64,
    pub validator_permit: bool,
    pub last_update: u64,
}

/// The chain state the coordinator acts on, read at one block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSnapshot {
    pub block: u64,
    pub neurons: Vec<Neuron>,
    pub commitments: Vec<RawCommitment>,
    /// Timestamp of the block (`Timestamp.Now`, ms since the epoch), when the
    /// chain has one: the block-lag metric.
    #[serde(default)]
    pub timestamp_ms: Option<u64>,
}

impl ChainSnapshot {
    pub fn hotkeys(&self) -> BTreeMap<u16, String> {
        self.neurons
            .iter()
            .map(|n| (n.uid, n.hotkey.clone()))
            .collect()
    }
}

/// What a weights extrinsic did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightsAction {
    /// `set_weights`: the weights are on chain.
    #[default]
    Set,
    /// `commit_weights`: the hash is on chain, the weights follow in
    /// [`Chain::reveal_due`] once the reveal window opens.
    Committed,
    /// `reveal_weights`: committed weights are now on chain.
    Revealed,
}

/// What the chain said to a weights extrinsic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsReceipt {
    /// Block the extrinsic was included in.
    pub block: u64,
    #[serde(default)]
    pub action: WeightsAction,
}

/// Chain failures, by what the caller should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Connection trouble: retry later.
    #[error("chain unreachable: {0}")]
    Unavailable(String),
    /// The chain refused the extrinsic (decoded module error): do not retry
    /// the same call before the cause changes.
    #[error("chain refused the call: {0}")]
    Refused(String),
}

impl ChainError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// The chain as the coordinator uses it.
#[async_trait]
pub trait Chain: Send + Sync + 'static {
    /// The metagraph and all commitments of the subnet at the latest finalized block.
    async fn snapshot(&self) -> Result<ChainSnapshot, ChainError>;

    /// Sets this validator's weights on the subnet: `set_weights`, or on a
    /// subnet with commit-reveal, a commit whose reveal [`Chain::reveal_due`]
    /// sends later.
    async fn set_weights(
        &self,
        weights: &U16Weights,
        version_key: u64,
    ) -> Result<WeightsReceipt, ChainError>;

    /// Reveals every kept commit whose reveal window is open; one outcome
    /// per reveal attempted. Called every tick; chains without commit-reveal
    /// have nothing to do.
    async fn reveal_due(&self) -> Result<Vec<Result<WeightsReceipt, ChainError>>, ChainError> {
        Ok(Vec::new())
    }
}
