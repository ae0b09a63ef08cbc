//! End-to-end tests of the assembled cluster live in `tests/`. This library
//! holds what they share.

use std::collections::BTreeMap;

use common::weights::{Contender, U16Weights, WeightsParams, compute_weights, to_u16};
use coordinator::leaderboard::Leaderboard;

/// Recomputes the u16 weights of a leaderboard from its entries with
/// `common`'s pure functions, independently of the aggregator.
pub fn expected_weights(board: &Leaderboard, params: &WeightsParams) -> U16Weights {
    let contenders: Vec<Contender> = board
        .entries
        .iter()
        .map(|e| Contender {
            uid: e.uid,
            score: e.score,
            block: e.block.unwrap_or(u64::MAX),
            valid: e.model.is_some(),
        })
        .collect();
    let weights: BTreeMap<u16, f64> = compute_weights(&contenders, params);
    to_u16(&weights)
}
