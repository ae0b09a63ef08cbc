//! What the RabbitMQ and Redis tests share.

/// The adapters' own logs in the test's output.
pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("common=debug")
        .with_test_writer()
        .try_init();
}
