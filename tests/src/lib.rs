//! End-to-end tests of the assembled cluster live in `tests/e2e/` (one binary,
//! one module per concern). This library holds what they share.
//!
//! # Layout
//! - [`sandbox`]: a private queue and key prefix on the local RabbitMQ and
//!   Redis, generated models, and real `worker run` processes (the fault
//!   tests in `tests/e2e/faults.rs`).
//! - [`hub`]: a local Hugging Face-compatible endpoint serving generated
//!   models, for the worker's hub source (`tests/e2e/hub.rs`).
//! - [`real_models`]: the real-model fixtures (SmolLM2, Gemma 3) built by
//!   `scripts/real-models/build`, and their numpy reference forward pass
//!   (`tests/e2e/real_models.rs`).
//! - [`http`]: a minimal HTTP client for the coordinator API's tests.
//! - [`promql`]: the metric names of PromQL expressions and of a `/metrics`
//!   exposition, for the dashboard checks (`tests/e2e/deploy/`).
//! - [`proxy`]: a TCP proxy a test can cut, to take a server away from one client.
//! - [`chain_double`]: a local subtensor (JSON-RPC over WebSocket, metadata
//!   built in code) for the subxt client, the weight setter and `coordinator submit`
//!   (`tests/e2e/chain.rs`); `src/bin/chain_double.rs` runs it as a process.
//! - [`cluster`]: the whole cluster as OS processes (chain double, hub
//!   endpoint, coordinator, workers) for the end-to-end tests (`tests/e2e/cluster.rs`).
//! - [`expected_weights`]: weights recomputed independently of the aggregator.
//! - [`hotkey_fixture`]: the hotkey files of the Python SDK; [`uniform_evaluation`]:
//!   what a stand-in for the engine returns.
//! - [`tools`]: the external tools `scripts/test` installs (Helm,
//!   schemathesis…).
//! - [`LogArgs`]: the `--log-format` flag of the test binaries (`src/bin/`).
//! - `src/bin/queue_bench.rs`: end-to-end queue overhead in jobs/s.
//! - `src/bin/api_bench.rs`: the miner status route under load (req/s, p99).

pub mod chain_double;
pub mod cluster;
pub mod http;
pub mod hub;
pub mod promql;
pub mod proxy;
pub mod real_models;
pub mod sandbox;
pub mod tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::chain_weights::{U16Weights, WeightsParams};
use common::telemetry::{self, LogFormat};
use coordinator::leaderboard::Leaderboard;
use worker::eval::Evaluation;

/// `--log-format` as the test binaries (`src/bin/`) take it, flattened into
/// their arguments.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Log format: human or json
    #[arg(long, default_value = "human")]
    log_format: LogFormat,
}

impl LogArgs {
    /// Installs the logger at `info` (`RUST_LOG` overrides it).
    pub fn init(&self) {
        telemetry::init(self.log_format, "info");
    }
}

/// A hotkey file written by the Python SDK (`common/tests/fixtures/hotkeys/`,
/// made by `make_hotkeys.py` there): `dev.json`, `other.json`…
pub fn hotkey_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../common/tests/fixtures/hotkeys")
        .join(name)
}

/// What a stand-in for the engine returns: every component at `score`,
/// `tokens` tokens, the dataset hash `dataset_sha256`, no details.
pub fn uniform_evaluation(score: f64, tokens: u64, dataset_sha256: String) -> Evaluation {
    Evaluation {
        components: common::testsuite::uniform_scores(score),
        tokens,
        dataset_sha256,
        details: Default::default(),
    }
}

/// Recomputes the u16 chain weights of a leaderboard from its entries,
/// following docs/architecture.md §8 step by step in plain loops rather
/// than with `common::chain_weights`, so that a slip in the aggregator's use of
/// those functions shows as a mismatch.
pub fn expected_weights(board: &Leaderboard, params: &WeightsParams) -> U16Weights {
    // 1. Eligible: a valid submission with a finite total above 0, by uid.
    let mut eligible: BTreeMap<u16, (f64, u64)> = BTreeMap::new();
    for entry in &board.entries {
        if entry.model.is_some() && entry.score.is_finite() && entry.score > 0.0 {
            let block = entry.block.unwrap_or(u64::MAX);
            eligible.insert(entry.uid, (entry.score, block));
        }
    }
    // 2. Every pair plays a match: the later submission's score is first
    // multiplied by `1 - earlier_advantage`, the higher score wins.
    let later = 1.0 - params.earlier_advantage;
    let mut win_rate: BTreeMap<u16, f64> = BTreeMap::new();
    for (&uid, &(score, block)) in &eligible {
        let mut wins = 0u32;
        for (&other, &(other_score, other_block)) in &eligible {
            if other == uid {
                continue;
            }
            let mine = if block > other_block {
                score * later
            } else {
                score
            };
            let theirs = if other_block > block {
                other_score * later
            } else {
                other_score
            };
            if mine > theirs {
                wins += 1;
            }
        }
        let rate = match eligible.len() {
            1 => 1.0,
            n => f64::from(wins) / (n - 1) as f64,
        };
        win_rate.insert(uid, rate);
    }
    // 3. Softmax over the win rates at the temperature, the largest subtracted.
    let mut largest_rate = f64::NEG_INFINITY;
    for &rate in win_rate.values() {
        largest_rate = largest_rate.max(rate);
    }
    let mut weights: BTreeMap<u16, f64> = BTreeMap::new();
    let mut sum = 0.0;
    for (&uid, &rate) in &win_rate {
        let e = ((rate - largest_rate) / params.temperature).exp();
        sum += e;
        weights.insert(uid, e);
    }
    for weight in weights.values_mut() {
        *weight /= sum;
    }
    // 4. The burn uid's fixed fraction; the rest scaled by `1 - fraction`.
    if let Some(burn) = params.burn {
        let others: f64 = weights.values().sum();
        for weight in weights.values_mut() {
            *weight *= 1.0 - burn.fraction;
        }
        let share = if others > 0.0 { burn.fraction } else { 1.0 };
        *weights.entry(burn.uid).or_default() += share;
    }
    // 5. Divided by the largest, times 65535, rounded (halves to even, as the
    // SDK does); zeros dropped.
    let mut largest = 0.0f64;
    for &weight in weights.values() {
        largest = largest.max(weight);
    }
    let mut expected = U16Weights::default();
    for (&uid, &weight) in &weights {
        if largest <= 0.0 {
            break;
        }
        let scaled = (weight / largest * f64::from(u16::MAX)).round_ties_even();
        if scaled >= 1.0 {
            expected.uids.push(uid);
            expected
                .weights
                .push(scaled.min(f64::from(u16::MAX)) as u16);
        }
    }
    expected
}
