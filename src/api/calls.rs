//! One record per call: a metric by matched route and status, and (for the API routes) a
//! `<host>.rest.info` line with the method, path, status and time on the `logs` exchange.

use super::Api;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// Middleware around every route.
pub async fn record(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    api.metrics.request(&route, status);
    if !matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
        let path = crate::log_lines::escape(&path);
        api.info(&format!("{method} {path} -> {status} in {:?}", started.elapsed())).await;
    }
    response
}
