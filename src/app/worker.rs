//! The worker, assembled: Redis index, AMQP message source and log sink, the encoder,
//! the health server, one orchestrator and the runner. Waits for its servers with
//! [`Backoff`]; configuration mistakes end it at once. While it runs, it keeps its entry
//! in the worker registry (`facerec:workers`: host and tolerance) fresh, so `facerec
//! reindex` can see it; a clean stop removes the entry.

use super::{AppError, EncoderChoice};
use crate::adapters::amqp::AmqpSettings;
use crate::adapters::amqp::logs::AmqpLogs;
use crate::adapters::amqp::source::AmqpSource;
use crate::adapters::redis_index::{HEARTBEAT, RedisIndex, RedisSettings};
use crate::backoff::Backoff;
use crate::http::Health;
use crate::metrics::{Gauges, Metrics};
use crate::orchestrator::{Orchestrator, Settings};
use crate::ports::FaceEncoder;
use crate::ports::IndexError;
use crate::runner::{self, Observe, Report, RunOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Everything the worker needs, already checked.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// RabbitMQ.
    pub amqp: AmqpSettings,
    /// Redis.
    pub redis: RedisSettings,
    /// dlib or recorded encodings.
    pub encoder: EncoderChoice,
    /// Orchestrator settings (tolerance, attempts, limits, routing keys).
    pub pipeline: Settings,
    /// Concurrency and retry delays.
    pub run: RunOptions,
    /// Where /healthz, /readyz and /metrics are served (`None`: not at all).
    pub http_addr: Option<SocketAddr>,
}

/// The worker's parts, filled in as they come up, for /readyz and /metrics.
#[derive(Default)]
struct Parts {
    index: OnceLock<Arc<RedisIndex>>,
    source: OnceLock<Arc<AmqpSource>>,
    logs: OnceLock<Arc<AmqpLogs>>,
    encoder: OnceLock<Arc<dyn FaceEncoder>>,
    /// Why the runner takes no deliveries now (index down, settlements failing).
    paused: Mutex<Option<String>>,
}

/// The runner's observer: metrics, plus pauses for readiness.
struct Watch {
    parts: Arc<Parts>,
    metrics: Arc<Metrics>,
}

impl Observe for Watch {
    fn taken(&self) {
        self.metrics.taken();
    }
    fn settled(&self, report: &Report) {
        self.metrics.settled(report);
    }
    fn paused(&self, reason: Option<&str>) {
        *self.parts.paused.lock().expect("lock") = reason.map(str::to_owned);
    }
}

impl Health for Parts {
    fn not_ready(&self) -> Option<String> {
        if let Some(reason) = self.paused.lock().expect("lock").clone() {
            return Some(format!("taking no deliveries: {reason}"));
        }
        if let Some(stalled) = self.encoder.get().and_then(|e| e.stalled()) {
            return Some(stalled);
        }
        let Some(index) = self.index.get() else { return Some("connecting to Redis".into()) };
        if !index.cache_loaded() {
            return Some("loading faces from Redis".into());
        }
        if !index.is_connected() {
            return Some("Redis connection lost".into());
        }
        match self.source.get() {
            Some(source) if source.is_connected() => None,
            _ => Some("not consuming from RabbitMQ".into()),
        }
    }

    fn gauges(&self) -> Gauges {
        let mut g = Gauges::default();
        if let Some(index) = self.index.get() {
            g.index_faces = index.cached_faces() as u64;
            g.index_bytes = index.cache_bytes() as u64;
        }
        if let Some(source) = self.source.get() {
            let stats = source.stats();
            g.reconnects = stats.connects.load(Ordering::Relaxed).saturating_sub(1);
            g.redeliveries = stats.redeliveries.load(Ordering::Relaxed);
        }
        if let Some(logs) = self.logs.get() {
            g.log_lines_dropped = logs.dropped();
        }
        g
    }
}

/// Runs the worker until `shutdown` fires (SIGTERM/SIGINT), then settles what is in flight.
///
/// # Errors
/// A configuration mistake (malformed setting, missing model file), the health port
/// cannot be bound, or Redis refuses what the worker needs.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> Result<(), AppError> {
    let parts = Arc::new(Parts::default());
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = config.http_addr {
        let bound = crate::http::serve(addr, parts.clone(), metrics.clone(), shutdown.clone())
            .await
            .map_err(|source| AppError::Io { what: format!("FACEREC_HTTP_ADDR {addr}"), source })?;
        tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");
    }
    let encoder = super::encoder(&config.encoder)?;
    let _ = parts.encoder.set(encoder.clone());
    let host = config.amqp.hostname.clone();
    let prefetch = config.amqp.prefetch;
    let Some(index) = wait_for("Redis", &shutdown, || RedisIndex::connect(config.redis.clone())).await? else {
        return Ok(());
    };
    let index = Arc::new(index);
    let _ = parts.index.set(index.clone());
    if wait_for("loading faces from Redis", &shutdown, || index.load_cache()).await?.is_none() {
        return Ok(());
    }
    let logs = Arc::new(AmqpLogs::start(config.amqp.clone()));
    let _ = parts.logs.set(logs.clone());
    let source = Arc::new(AmqpSource::start(config.amqp, config.pipeline.max_attempts));
    let _ = parts.source.set(source.clone());
    let stop_heartbeat = CancellationToken::new();
    let beats = tokio::spawn(heartbeat(index.clone(), host.clone(), config.pipeline.tolerance, stop_heartbeat.clone()));
    let orchestrator = Arc::new(Orchestrator::new(encoder, index.clone(), logs.clone(), config.pipeline));
    tracing::info!(concurrency = config.run.concurrency, prefetch, host, "worker running");
    let watch = Arc::new(Watch { parts: parts.clone(), metrics });
    let result = runner::run(orchestrator, source.clone(), config.run, shutdown, watch).await;
    tracing::info!("stopping: closing connections");
    stop_heartbeat.cancel();
    let _ = beats.await;
    if let Err(e) = index.unregister_worker(&host).await {
        tracing::warn!(error = %e, "could not remove this worker from the worker registry; its entry expires by itself");
    }
    source.close().await;
    logs.close(Duration::from_secs(5)).await;
    index.close().await;
    let stats = result?;
    tracing::info!(?stats, "worker stopped");
    Ok(())
}

/// Keeps this worker's registry entry fresh every [`HEARTBEAT`] until `stop`, and says
/// (at level error, once per recorded value) when the tolerance recorded in Redis by
/// `facerec reindex` is not this worker's: the worker keeps its own setting, so it links
/// new images at its tolerance while db 4 was built at the recorded one.
async fn heartbeat(index: Arc<RedisIndex>, host: String, tolerance: f64, stop: CancellationToken) {
    let mut told: Option<f64> = None;
    loop {
        match index.register_worker(&host, tolerance).await {
            Ok(Some(recorded)) if recorded != tolerance => {
                if told != Some(recorded) {
                    tracing::error!(
                        tolerance,
                        recorded,
                        "db 4 was built with another tolerance than this worker's (recorded by facerec reindex); \
                         this worker keeps its own and links new images at it: restart it with the recorded \
                         tolerance, or reindex to this one"
                    );
                    told = Some(recorded);
                }
            }
            Ok(_) => told = None,
            Err(e) => tracing::warn!(error = %e, "could not refresh this worker's entry in the worker registry"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}

/// Retries `attempt` with [`Backoff`] while the server is unreachable, until it succeeds
/// (`Some`) or `shutdown` fires (`None`). Any other error (a refusal) ends the wait.
async fn wait_for<T, F, Fut>(what: &str, shutdown: &CancellationToken, mut attempt: F) -> Result<Option<T>, AppError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, IndexError>>,
{
    let mut backoff = Backoff::default();
    loop {
        match attempt().await {
            Ok(v) => return Ok(Some(v)),
            Err(e) if e.is_transient() => tracing::warn!(error = %e, "{what} not available yet; retrying"),
            Err(e) => return Err(e.into()),
        }
        if !backoff.wait(shutdown).await {
            return Ok(None);
        }
    }
}
