//! The coordinator's Prometheus metrics, all declared here.

use std::sync::LazyLock;

use common::metrics::{
    counter, counter_vec, float_gauge, gauge, gauge_vec, histogram, histogram_vec,
};
use common::result::FailureCode;
use common::submission::InvalidReason;
use prometheus::{
    Gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

common::metrics! {
    /// Jobs published to the queue by the reconciler, by why: `new` (first
    /// time), `republished` (after a reclaimed lease or a requeued dead letter)
    /// or `stranded` (an earlier publish failed: the job had no message).
    pub static JOBS_PUBLISHED: IntCounterVec = counter_vec("eval_coordinator_jobs_published_total", "Jobs published, by reason", &["reason"]);
    /// What the reconciler repaired, by action: `reclaimed` (expired lease),
    /// `requeued` (dead-lettered job queued again), `failed` (gave up on a job),
    /// `stranded` (published a job whose earlier publish failed), `lost`
    /// (replaced a message gone from an empty queue), `publish_failed` (a publish the next pass retries).
    pub static RECONCILER_REPAIRS: IntCounterVec = counter_vec("eval_coordinator_reconciler_repairs_total", "Lifecycle repairs by the reconciler, by action", &["action"]);
    /// QUEUED jobs without a message outstanding at the reconciler's last pass
    /// (each gets one in that pass; a value that stays up means the broker is away).
    pub static JOBS_UNPUBLISHED: IntGauge = gauge("eval_coordinator_jobs_unpublished", "QUEUED jobs without a message at the reconciler's last pass");
    /// Dead-lettered messages the reconciler settled.
    pub static DEAD_LETTERS_SETTLED: IntCounter = counter("eval_coordinator_dead_letters_settled_total", "Dead-lettered messages settled by the reconciler");
    /// Submissions seen at the last chain read, by verdict (`valid` or the invalid reason's code).
    pub static SUBMISSIONS: IntGaugeVec = gauge_vec("eval_coordinator_submissions", "Submissions at the last chain read, by verdict", &["verdict"]);
    /// Jobs waiting in the queue.
    pub static QUEUE_DEPTH: IntGauge = gauge("eval_coordinator_queue_depth", "Jobs waiting in the queue");
    /// Latest chain block read.
    pub static CHAIN_BLOCK: IntGauge = gauge("eval_coordinator_chain_block", "Latest chain block read");
    /// Block at which weights were last set.
    pub static LAST_WEIGHTS_BLOCK: IntGauge = gauge("eval_coordinator_last_weights_set_block", "Block at which weights were last set");
    /// Weight-setting attempts, by result: `set`, `refused`, `unavailable`, `dry_run`, `empty`.
    pub static WEIGHT_SETS: IntCounterVec = counter_vec("eval_coordinator_weight_sets_total", "Weight-setting attempts, by result", &["result"]);
    /// Jobs in the store by status (`queued`, `running`, `completed`, `failed`),
    /// as the API's status index last read them.
    pub static JOBS: IntGaugeVec = gauge_vec("eval_coordinator_jobs", "Jobs in the store, by status", &["status"]);
    /// Jobs seen reaching a final status since this process started, by outcome
    /// (`completed`, `failed`).
    pub static JOBS_FINISHED: IntCounterVec = counter_vec("eval_coordinator_jobs_finished_total", "Jobs seen finishing, by outcome", &["outcome"]);
    /// FAILED jobs in the store, by failure code.
    pub static FAILED_JOBS: IntGaugeVec = gauge_vec("eval_coordinator_failed_jobs", "FAILED jobs in the store, by failure code", &["reason"]);
    /// Seconds from a job's first claim to its result, observed once per job
    /// seen finishing.
    pub static JOB_DURATION: Histogram = histogram("eval_coordinator_job_duration_seconds", "Evaluation time of finished jobs (start to result)", &[ 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0]);
    /// Tokens per second of the last job seen completing.
    pub static EVAL_TOKENS_PER_SECOND: Gauge = float_gauge("eval_coordinator_eval_tokens_per_second", "Evaluation rate of the last completed job, tokens/s");
    /// HTTP requests answered, by matched route and status code.
    pub static HTTP_REQUESTS: IntCounterVec = counter_vec("eval_coordinator_http_requests_total", "HTTP requests, by route and status code", &["route", "code"]);
    /// HTTP connections open now.
    pub static HTTP_CONNECTIONS: IntGauge = gauge("eval_coordinator_http_connections", "HTTP connections open now");
    /// HTTP connections refused at the connection limit (answered 503 and closed).
    pub static HTTP_CONNECTIONS_REFUSED: IntCounter = counter("eval_coordinator_http_connections_refused_total", "HTTP connections refused at the connection limit");
    /// HTTP request latency, by matched route.
    pub static HTTP_DURATION: HistogramVec = histogram_vec("eval_coordinator_http_request_duration_seconds", "HTTP request latency, by route", &["route"], &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]);
}

/// The `verdict` label of [`SUBMISSIONS`] for a valid submission; an
/// invalid one is labelled with its reason's code ([`InvalidReason::code`]).
pub const VALID: &str = "valid";

/// Sets every known label of [`SUBMISSIONS`] to 0 (instead of removing them,
/// so each series stays on `/metrics`).
pub fn zero_submissions() {
    for verdict in std::iter::once(VALID).chain(InvalidReason::CODES) {
        SUBMISSIONS.with_label_values(&[verdict]).set(0);
    }
}

/// Registers every metric and creates every known label combination, so that
/// each name is on `/metrics` from the start (dashboards and alerts need the
/// series to exist before the first event). `routes` are the HTTP routes.
pub fn init(routes: &[&str]) {
    for reason in ["new", "republished", "stranded"] {
        JOBS_PUBLISHED.with_label_values(&[reason]);
    }
    for action in [
        "reclaimed",
        "requeued",
        "failed",
        "stranded",
        "lost",
        "publish_failed",
    ] {
        RECONCILER_REPAIRS.with_label_values(&[action]);
    }
    JOBS_UNPUBLISHED.get();
    LazyLock::force(&DEAD_LETTERS_SETTLED);
    zero_submissions();
    QUEUE_DEPTH.get();
    CHAIN_BLOCK.get();
    LAST_WEIGHTS_BLOCK.get();
    for result in ["set", "refused", "unavailable", "dry_run", "empty"] {
        WEIGHT_SETS.with_label_values(&[result]);
    }
    for status in ["queued", "running", "completed", "failed"] {
        JOBS.with_label_values(&[status]);
    }
    for outcome in ["completed", "failed"] {
        JOBS_FINISHED.with_label_values(&[outcome]);
    }
    for code in FailureCode::ALL {
        FAILED_JOBS.with_label_values(&[code.as_str()]);
    }
    JOB_DURATION.get_sample_count();
    EVAL_TOKENS_PER_SECOND.get();
    for route in routes {
        HTTP_REQUESTS.with_label_values(&[*route, "200"]);
        HTTP_DURATION.with_label_values(&[route]);
    }
    HTTP_CONNECTIONS.get();
    HTTP_CONNECTIONS_REFUSED.get();
    init_chain_metrics();
}

common::metrics! {
    /// Seconds between now and the latest finalized block's timestamp (or the
    /// block-number lag × 12 s where the chain has no timestamp).
    pub static CHAIN_BLOCK_LAG: Gauge = float_gauge(
        "eval_coordinator_chain_block_lag_seconds",
        "Now minus the latest finalized block's timestamp",
    );
    /// Chain connections re-established after a drop.
    pub static CHAIN_RECONNECTS: IntCounter = counter(
        "eval_coordinator_chain_reconnects_total",
        "Chain connections re-established after a drop",
    );
    /// Commit-reveal steps, by result: `committed`, `revealed`, `refused`, `unavailable`.
    pub static WEIGHT_COMMITS: IntCounterVec = counter_vec(
        "eval_coordinator_weight_commits_total",
        "Commit-reveal steps, by result",
        &["result"],
    );
}

/// Touches the chain branch's metrics so they appear on /metrics from the start.
pub fn init_chain_metrics() {
    CHAIN_BLOCK_LAG.set(0.0);
    LazyLock::force(&CHAIN_RECONNECTS);
    for result in ["committed", "revealed", "refused", "unavailable"] {
        WEIGHT_COMMITS.with_label_values(&[result]);
    }
}
