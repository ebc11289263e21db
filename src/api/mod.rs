//! The REST front-end (`facerec api`): the course's routes, the versioned API, health.
//!
//! The router talks to ports only ([`FaceIndex`] to read, [`ImageQueue`] to submit,
//! [`UrlFetcher`], [`LogSink`], [`Readiness`], and an optional [`FaceEncoder`] to erase
//! by photo); `src/app/api.rs` plugs in Redis, RabbitMQ
//! and [`fetch::SafeFetcher`], the hermetic tests plug in fakes.
//!
//! # Layout
//! - [`course`]: `POST /scan/image/{filename}`, `POST /scan/url`, `GET /match/{hash}`.
//! - [`page`]: the web page, `GET /` and `GET /assets/{file}`, embedded in the binary.
//! - [`v1`]: `/api/v1/...` with its OpenAPI document.
//! - [`submit`]: reading bodies within limits, checking names, queueing, tracking what is queued.
//! - [`shed`]: 503 while the work queue is too deep; [`cors`]: CORS when configured.
//! - [`problem`]: RFC 9457 errors; [`auth`]: the optional bearer token.
//! - [`fetch`]: SSRF-safe URL fetching; [`ports`]: the fetcher and readiness traits.
//! - [`calls`]: one `logs` line and one metric per call; [`metrics`]: the series.
//! - [`server`]: the listener (connection cap, header timeout, graceful shutdown).

pub mod auth;
pub mod calls;
pub mod cors;
pub mod course;
pub mod fetch;
pub mod metrics;
pub mod page;
pub mod ports;
pub mod problem;
pub mod server;
pub mod shed;
pub mod submit;
pub mod v1;

use crate::config::Secret;
use crate::ports::{FaceEncoder, FaceIndex, ImageQueue, LogSink};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::ApiMetrics;
use ports::{Readiness, UrlFetcher};
use problem::Problem;
use std::sync::Arc;
use std::time::Duration;

/// Limits and options of the front-end.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Names the `logs` routing keys `<hostname>.rest.info` / `.rest.debug`.
    pub hostname: String,
    /// Largest request body (an image), in bytes: the worker's image limit.
    pub max_body_bytes: usize,
    /// Longest image name (file name or `?name=`), in bytes.
    pub max_name_bytes: usize,
    /// Time a client may take to send a body.
    pub body_timeout: Duration,
    /// Bearer token required on the API routes, if any.
    pub token: Option<Secret>,
    /// `Retry-After` seconds of a 503.
    pub retry_after: u32,
    /// Submissions get 503 while the work queue holds more messages (`None`: never).
    pub max_queue: Option<u64>,
    /// Origins allowed by CORS (`*`: any); empty: no CORS headers (the default).
    pub cors_origins: Vec<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            hostname: crate::log_lines::hostname(),
            max_body_bytes: crate::decode::DecodeLimits::default().max_bytes,
            max_name_bytes: 1024,
            body_timeout: Duration::from_secs(30),
            token: None,
            retry_after: 5,
            max_queue: None,
            cors_origins: Vec::new(),
        }
    }
}

/// The ports the front-end works through.
pub struct ApiPorts {
    /// Reads (databases 1-4).
    pub index: Arc<dyn FaceIndex>,
    /// Submissions.
    pub queue: Arc<dyn ImageQueue>,
    /// `POST /scan/url` downloads.
    pub fetcher: Arc<dyn UrlFetcher>,
    /// The `logs` exchange.
    pub logs: Arc<dyn LogSink>,
    /// `/readyz`.
    pub readiness: Arc<dyn Readiness>,
    /// Finds the faces of a photo for `POST /api/v1/forget`: `facerec serve` has one;
    /// `facerec api` has none (it only queues images), and that route answers 501 there.
    pub encoder: Option<Arc<dyn FaceEncoder>>,
}

/// The state every handler shares.
pub struct Api {
    ports: ApiPorts,
    settings: ApiSettings,
    metrics: ApiMetrics,
    queued: submit::Recent,
    depth: shed::DepthCache,
    events: v1::events::Hub,
    info_key: String,
    debug_key: String,
}

impl Api {
    /// The front-end over `ports`.
    pub fn new(ports: ApiPorts, settings: ApiSettings) -> Arc<Self> {
        let info_key = format!("{}.rest.info", settings.hostname);
        let debug_key = format!("{}.rest.debug", settings.hostname);
        Arc::new(Self {
            ports,
            settings,
            metrics: ApiMetrics::default(),
            queued: submit::Recent::default(),
            depth: shed::DepthCache::default(),
            events: v1::events::Hub::default(),
            info_key,
            debug_key,
        })
    }

    /// Publishes an info line on the `logs` exchange.
    async fn info(&self, line: &str) {
        self.ports.logs.publish(&self.info_key, line).await;
    }

    /// Publishes a debug line on the `logs` exchange.
    async fn debug(&self, line: &str) {
        self.ports.logs.publish(&self.debug_key, line).await;
    }

    /// A 503 for a failed dependency.
    fn unavailable(&self, detail: impl Into<String>) -> Problem {
        Problem::unavailable(detail, self.settings.retry_after)
    }
}

/// Every route: the course's, `/api/v1`, health. Unknown paths are 404, wrong methods 405,
/// both as problem+json.
pub fn router(api: Arc<Api>) -> Router {
    let protected = course::routes()
        .merge(v1::routes())
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), auth::require_token));
    let router = Router::new()
        .merge(page::routes())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(api.clone(), calls::record))
        .layer(axum::extract::DefaultBodyLimit::disable());
    // Outermost, so a preflight is answered before the token check.
    let router = if api.settings.cors_origins.is_empty() {
        router
    } else {
        router.layer(axum::middleware::from_fn_with_state(api.clone(), cors::cors))
    };
    router.with_state(api)
}

async fn ready(State(api): State<Arc<Api>>) -> Result<&'static str, Problem> {
    match api.ports.readiness.not_ready() {
        None => Ok("ready\n"),
        Some(why) => Err(api.unavailable(format!("not ready: {why}"))),
    }
}

async fn metrics_text(State(api): State<Arc<Api>>) -> impl IntoResponse {
    let body = api.metrics.render(api.ports.readiness.not_ready().is_none());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("no route {}", crate::log_lines::escape(uri.path())))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", crate::log_lines::escape(uri.path())),
    )
}
