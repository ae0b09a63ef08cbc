//! What the contract suites and their callers share: names of their own on
//! the shared RabbitMQ and Redis servers, and the fixtures they build on.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::job::{JobMessage, JobOrigin, ModelRef};
use crate::result::ComponentScores;

/// An operator's job for model `contract/<name>` at `main`; distinct names
/// give distinct ids.
pub fn job_message(name: &str, queued_at_ms: u64) -> JobMessage {
    let model = ModelRef {
        namespace: "contract".into(),
        name: name.into(),
        revision: "main".into(),
        chat_template: "chatml".into(),
    };
    let origin = JobOrigin::Operator {
        requested_by: "testsuite".into(),
    };
    JobMessage::v1(model, "v1", origin, queued_at_ms)
}

/// Each v1 component a different exact binary fraction (similarity 0.5,
/// vibe 0.25, latency 0.75, size 0.125; no judge), so that one component
/// shown in another's place is caught.
pub fn distinct_scores() -> ComponentScores {
    ComponentScores {
        similarity: 0.5,
        vibe: 0.25,
        latency: 0.75,
        size: 0.125,
        judge: None,
    }
}

/// Every v1 component at `score` (no judge).
pub fn uniform_scores(score: f64) -> ComponentScores {
    ComponentScores {
        similarity: score,
        vibe: score,
        latency: score,
        size: score,
        judge: None,
    }
}

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
