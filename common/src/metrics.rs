//! Helpers for the per-crate metric modules (each binary declares its own
//! metrics in its `metrics.rs`; this is the shared plumbing).

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
