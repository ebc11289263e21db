//! The worker's HTTP endpoints: `/healthz` (the process answers), `/readyz` (connected to
//! RabbitMQ and Redis, face cache loaded) and `/metrics` (Prometheus text). Served by the
//! same hardened listener as the API ([`crate::api::server`]): a connection cap and a
//! header-read deadline, so idle or half-sent requests cannot use up the process's file
//! descriptors and starve the kubelet's probes.

use crate::api::server::ServerLimits;
use crate::metrics::{CONTENT_TYPE, Gauges, Metrics};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the endpoints need to know, implemented by the worker's wiring.
pub trait Health: Send + Sync + 'static {
    /// Why the worker is not ready, or `None` when it is.
    fn not_ready(&self) -> Option<String>;
    /// Current values of the gauges.
    fn gauges(&self) -> Gauges;
}

/// Probes and scrapes need few connections; a client gets 5 s to send its headers.
const LIMITS: ServerLimits = ServerLimits { max_connections: 128, header_timeout: std::time::Duration::from_secs(5) };

struct AppState {
    health: Arc<dyn Health>,
    metrics: Arc<Metrics>,
}

/// Serves the endpoints on `addr` until `shutdown`; returns the bound address (port 0
/// picks a free port, for tests).
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<dyn Health>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let state = Arc::new(AppState { health, metrics });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(crate::api::server::serve(listener, app, LIMITS, shutdown));
    Ok(bound)
}

async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, String) {
    match state.health.not_ready() {
        None => (StatusCode::OK, "ready\n".into()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> ([(&'static str, &'static str); 1], String) {
    let body = state.metrics.render(state.health.gauges());
    ([("content-type", CONTENT_TYPE)], body)
}
