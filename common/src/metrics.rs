//! Helpers for the per-crate metric modules (each binary declares its own
//! metrics in its `metrics.rs`; this is the shared plumbing).

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts,
};

/// Registers `collector` in the default registry and returns it, for
/// `LazyLock` statics. Panics on an invalid or duplicate metric: both are
/// programming errors caught by the first test that touches the metric.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(
    collector: prometheus::Result<C>,
) -> C {
    let collector = collector.expect("metric options are valid");
    prometheus::default_registry()
        .register(Box::new(collector.clone()))
        .expect("metric names are unique");
    collector
}

/// Declares metric families as `LazyLock` statics, each built (and so
/// registered) on first use: `static NAME: Type = constructor(..);`, with
/// the constructors below. rustfmt leaves the block alone, so a crate writes
/// one declaration per line and its metrics read as a table: name, kind,
/// Prometheus name, help and labels.
#[macro_export]
macro_rules! metrics {
    ($($(#[$attr:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr;)*) => {
        $(
            $(#[$attr])*
            $vis static $name: ::std::sync::LazyLock<$ty> = ::std::sync::LazyLock::new(|| $init);
        )*
    };
}

/// A registered counter.
pub fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help))
}

/// A registered counter family with `labels`.
pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels))
}

/// A registered integer gauge.
pub fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help))
}

/// A registered integer gauge family with `labels`.
pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels))
}

/// A registered floating-point gauge.
pub fn float_gauge(name: &str, help: &str) -> Gauge {
    register(Gauge::new(name, help))
}

/// A registered histogram with upper bounds `buckets`.
pub fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    register(Histogram::with_opts(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
    ))
}

/// A registered histogram family with `labels` and upper bounds `buckets`.
pub fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    register(HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    ))
}
