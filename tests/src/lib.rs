//! End-to-end tests of the assembled cluster live in `tests/`. This library
//! holds what they share.
//!
//! # Layout
//! - [`sandbox`]: a private queue and key prefix on the local RabbitMQ and
//!   Redis, generated models, and real `worker run` processes (the fault
//!   tests in `tests/faults.rs`).
//! - [`hub`]: a local Hugging Face-compatible endpoint serving generated
//!   models, for the worker's hub source (`tests/hub.rs`).
//! - [`real_models`]: the real-model fixtures (SmolLM2, Gemma 3) built by
//!   `scripts/real-models/build`, and their numpy reference forward pass
//!   (`tests/real_models.rs`).
//! - [`http`]: a minimal HTTP client for the coordinator API's tests.
//! - [`proxy`]: a TCP proxy a test can cut, to take a server away from one client.
//! - [`chain_double`]: a local subtensor (JSON-RPC over WebSocket, metadata
//!   built in code) for the subxt client, the weight setter and `coordinator submit`
//!   (`tests/chain.rs`); `src/bin/chain_double.rs` runs it as a process.
//! - [`cluster`]: the whole cluster as OS processes (chain double, hub
//!   endpoint, coordinator, workers) for the end-to-end tests (`tests/cluster.rs`).
//! - [`expected_weights`]: weights recomputed independently of the aggregator.
//! - [`tools`]: the external tools `scripts/test` installs (Helm,
//!   schemathesis…).
//! - `src/bin/queue_bench.rs`: end-to-end queue overhead in jobs/s.
//! - `src/bin/api_bench.rs`: the miner status route under load (req/s, p99).

pub mod chain_double;
pub mod cluster;
pub mod http;
pub mod hub;
pub mod proxy;
pub mod real_models;
pub mod sandbox;
pub mod tools;

use std::collections::BTreeMap;

use common::chain_weights::{Contender, U16Weights, WeightsParams, compute_weights, to_u16};
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
