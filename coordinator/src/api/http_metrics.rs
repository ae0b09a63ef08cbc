//! The HTTP metrics layer of every route, on the public and the admin port.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics;

/// Label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Middleware: counts and times every request by matched route (never the
/// raw path, which would let clients create unbounded label values).
pub async fn http_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(request).await;
    let route = route.as_deref().unwrap_or(UNMATCHED);
    metrics::HTTP_DURATION
        .with_label_values(&[route])
        .observe(start.elapsed().as_secs_f64());
    metrics::HTTP_REQUESTS
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    response
}
