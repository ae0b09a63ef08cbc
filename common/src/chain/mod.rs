//! The validator's view of the chain (DESIGN §3): the metagraph, the
//! miners' commitments, and setting weights.
//!
//! [`Chain`] is what the coordinator needs; the subxt client (issue: chain)
//! and [`MemoryChain`] implement it. Reads are snapshots at one block, so the
//! validity rules always see a consistent state.

mod memory;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::memory::MemoryChain;
use crate::submission::RawCommitment;
use crate::weights::U16Weights;

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
}

impl ChainSnapshot {
    pub fn hotkeys(&self) -> BTreeMap<u16, String> {
        self.neurons
            .iter()
            .map(|n| (n.uid, n.hotkey.clone()))
            .collect()
    }
}

/// What the chain said to a weights extrinsic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsReceipt {
    /// Block the extrinsic was included in.
    pub block: u64,
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

    /// Sets this validator's weights on the subnet.
    async fn set_weights(
        &self,
        weights: &U16Weights,
        version_key: u64,
    ) -> Result<WeightsReceipt, ChainError>;
}
