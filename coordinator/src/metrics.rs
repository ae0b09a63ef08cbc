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
