//! The coordinator's Prometheus metrics, all declared here.

use std::sync::LazyLock;

use common::metrics::register;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, opts};

/// Jobs published to the queue, by why: `new` (first time) or `reclaimed`
/// (lease expired or result lost).
pub static JOBS_PUBLISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        opts!(
            "eval_coordinator_jobs_published_total",
            "Jobs published, by reason"
        ),
        &["reason"],
    ))
});

/// Submissions seen at the last chain read, by verdict (`valid` or the invalid reason's code).
pub static SUBMISSIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(IntGaugeVec::new(
        opts!(
            "eval_coordinator_submissions",
            "Submissions at the last chain read, by verdict"
        ),
        &["verdict"],
    ))
});

/// Jobs waiting in the queue.
pub static QUEUE_DEPTH: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::with_opts(opts!(
        "eval_coordinator_queue_depth",
        "Jobs waiting in the queue"
    )))
});

/// Latest chain block read.
pub static CHAIN_BLOCK: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::with_opts(opts!(
        "eval_coordinator_chain_block",
        "Latest chain block read"
    )))
});

/// Block at which weights were last set.
pub static LAST_WEIGHTS_BLOCK: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::with_opts(opts!(
        "eval_coordinator_last_weights_set_block",
        "Block at which weights were last set"
    )))
});

/// Weight-setting attempts, by result: `set`, `refused`, `unavailable`, `dry_run`, `empty`.
pub static WEIGHT_SETS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        opts!(
            "eval_coordinator_weight_sets_total",
            "Weight-setting attempts, by result"
        ),
        &["result"],
    ))
});

/// Seconds between now and the latest finalized block's timestamp (or the
/// block-number lag × 12 s where the chain has no timestamp).
pub static CHAIN_BLOCK_LAG: LazyLock<prometheus::Gauge> = LazyLock::new(|| {
    register(prometheus::Gauge::with_opts(opts!(
        "eval_coordinator_chain_block_lag_seconds",
        "Now minus the latest finalized block's timestamp"
    )))
});

/// Chain connections re-established after a drop.
pub static CHAIN_RECONNECTS: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    register(prometheus::IntCounter::with_opts(opts!(
        "eval_coordinator_chain_reconnects_total",
        "Chain connections re-established after a drop"
    )))
});

/// Commit-reveal steps, by result: `committed`, `revealed`, `refused`, `unavailable`.
pub static WEIGHT_COMMITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        opts!(
            "eval_coordinator_weight_commits_total",
            "Commit-reveal steps, by result"
        ),
        &["result"],
    ))
});

/// Touches the chain branch's metrics so they appear on /metrics from the start.
pub fn init_chain_metrics() {
    CHAIN_BLOCK_LAG.set(0.0);
    LazyLock::force(&CHAIN_RECONNECTS);
    for result in ["committed", "revealed", "refused", "unavailable"] {
        WEIGHT_COMMITS.with_label_values(&[result]);
    }
}
