//! What every caller of the contract suites needs: names of its own on the
//! shared RabbitMQ and Redis servers.

use std::sync::atomic::{AtomicU64, Ordering};

/// A queue name or key prefix no other test (in this or another process,
/// or an earlier run) uses.
pub fn unique_name(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "test.{test}.{}.{nanos}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
