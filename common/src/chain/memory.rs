//! An in-process chain for the embedded mode and unit tests. It applies the
//! checks of the real chain that matter to the coordinator: only registered
//! hotkeys commit, commitments fit in 128 bytes, weights respect the rate limit.

use std::collections::BTreeMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{Chain, ChainError, ChainSnapshot, Neuron, WeightsReceipt};
use crate::chain_weights::U16Weights;
use crate::submission::{MAX_COMMIT_BYTES, RawCommitment};

#[derive(Debug, Default)]
struct State {
    block: u64,
    neurons: BTreeMap<u16, Neuron>,
    commitments: BTreeMap<String, (u64, Vec<u8>)>,
    weights: Vec<(u64, U16Weights)>,
}

/// See the module docs.
#[derive(Debug)]
pub struct MemoryChain {
    validator_hotkey: String,
    weights_rate_limit: u64,
    state: Mutex<State>,
}

impl MemoryChain {
    /// A chain at `block` whose validator is `validator_hotkey`, allowing one
    /// weight update every `weights_rate_limit` blocks.
    pub fn new(block: u64, validator_hotkey: &str, weights_rate_limit: u64) -> Self {
        Self {
            validator_hotkey: validator_hotkey.to_owned(),
            weights_rate_limit,
            state: Mutex::new(State {
                block,
                ..State::default()
            }),
        }
    }

    /// Registers `hotkey` under the next free uid and returns it.
    pub fn register(&self, hotkey: &str, validator_permit: bool) -> u16 {
        let mut state = self.state.lock();
        let uid = state.neurons.len() as u16;
        let block = state.block;
        state.neurons.insert(
            uid,
            Neuron {
                uid,
                hotkey: hotkey.to_owned(),
                registered_at_block: block,
                validator_permit,
                last_update: 0,
            },
        );
        uid
    }

    /// Stores `data` as `hotkey`'s commitment at the current block.
    pub fn commit(&self, hotkey: &str, data: &[u8]) -> Result<u64, ChainError> {
        let mut state = self.state.lock();
        if !state.neurons.values().any(|n| n.hotkey == hotkey) {
            return Err(ChainError::Refused(
                "Commitments.AccountNotAllowedCommit".into(),
            ));
        }
        if data.len() > MAX_COMMIT_BYTES {
            return Err(ChainError::Refused(
                "Commitments.TooManyFieldsInCommitmentInfo".into(),
            ));
        }
        let block = state.block;
        state
            .commitments
            .insert(hotkey.to_owned(), (block, data.to_vec()));
        Ok(block)
    }

    pub fn advance(&self, blocks: u64) -> u64 {
        let mut state = self.state.lock();
        state.block += blocks;
        state.block
    }

    /// Every weight vector set so far, with its block.
    pub fn weights_history(&self) -> Vec<(u64, U16Weights)> {
        self.state.lock().weights.clone()
    }
}

#[async_trait]
impl Chain for MemoryChain {
    async fn snapshot(&self) -> Result<ChainSnapshot, ChainError> {
        let state = self.state.lock();
        let commitments = state
            .neurons
            .values()
            .filter_map(|n| {
                let (block, data) = state.commitments.get(&n.hotkey)?;
                Some(RawCommitment {
                    uid: n.uid,
                    hotkey: n.hotkey.clone(),
                    block: *block,
                    data: data.clone(),
                    not_raw: None,
                })
            })
            .collect();
        Ok(ChainSnapshot {
            block: state.block,
            neurons: state.neurons.values().cloned().collect(),
            commitments,
            timestamp_ms: None,
        })
    }

    async fn set_weights(
        &self,
        weights: &U16Weights,
        _version_key: u64,
    ) -> Result<WeightsReceipt, ChainError> {
        let mut state = self.state.lock();
        let block = state.block;
        let n = state.neurons.len() as u16;
        let validator = state
            .neurons
            .values_mut()
            .find(|n| n.hotkey == self.validator_hotkey)
            .ok_or_else(|| {
                ChainError::Refused("SubtensorModule.HotKeyNotRegisteredInSubNet".into())
            })?;
        if !validator.validator_permit {
            return Err(ChainError::Refused(
                "SubtensorModule.NeuronNoValidatorPermit".into(),
            ));
        }
        if validator.last_update != 0 && block < validator.last_update + self.weights_rate_limit {
            return Err(ChainError::Refused(
                "SubtensorModule.SettingWeightsTooFast".into(),
            ));
        }
        if weights.uids.len() != weights.weights.len() || weights.uids.iter().any(|&u| u >= n) {
            return Err(ChainError::Refused(
                "SubtensorModule.UidVecContainInvalidOne".into(),
            ));
        }
        validator.last_update = block;
        state.weights.push((block, weights.clone()));
        Ok(WeightsReceipt {
            block,
            action: super::WeightsAction::Set,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rate_limit_and_registration_are_enforced() {
        let chain = MemoryChain::new(10, "validator", 100);
        chain.register("validator", true);
        chain.register("miner", false);
        assert!(chain.commit("stranger", b"x").is_err());
        assert_eq!(chain.commit("miner", b"x").unwrap(), 10);
        let w = U16Weights {
            uids: vec![1],
            weights: vec![65535],
        };
        assert_eq!(chain.set_weights(&w, 1).await.unwrap().block, 10);
        chain.advance(50);
        assert_eq!(
            chain.set_weights(&w, 1).await,
            Err(ChainError::Refused(
                "SubtensorModule.SettingWeightsTooFast".into()
            ))
        );
        chain.advance(50);
        assert!(chain.set_weights(&w, 1).await.is_ok());
        let snapshot = chain.snapshot().await.unwrap();
        assert_eq!(snapshot.commitments.len(), 1);
        assert_eq!(snapshot.block, 110);
    }
}
