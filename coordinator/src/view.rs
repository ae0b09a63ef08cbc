//! What the coordinator last saw and did, shared with the HTTP API.

use std::sync::Arc;

use common::chain_weights::U16Weights;
use common::submission::Verdict;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::leaderboard::Leaderboard;

/// Weights the coordinator set, or tried to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightsStatus {
    /// The last weights computed, whether or not they were set.
    pub computed: Option<U16Weights>,
    pub computed_at_block: Option<u64>,
    /// The last weights the chain accepted.
    pub set: Option<U16Weights>,
    pub set_at_block: Option<u64>,
    /// What went wrong with the last attempt, if it failed.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub block: u64,
    /// Unix ms of the last successful chain read (the API's readiness check).
    pub chain_read_at_ms: Option<u64>,
    pub verdicts: Vec<Verdict>,
    pub leaderboard: Leaderboard,
    pub weights: WeightsStatus,
}

/// A cheaply cloned handle to the shared view.
#[derive(Debug, Clone, Default)]
pub struct SharedView(Arc<RwLock<View>>);

impl SharedView {
    pub fn read(&self) -> View {
        self.0.read().clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut View)) {
        f(&mut self.0.write());
    }
}
