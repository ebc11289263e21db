//! `facerec worker`: the production job. Consumes `toWorker`, finds faces with dlib, keeps
//! Redis databases 1-4, logs to `logs`, acknowledges each image only once it is stored.

use super::connection_args::{BrokerArgs, RedisArgs};
use super::encoder_args::EncoderArgs;
use super::pipeline_args::PipelineArgs;
use crate::adapters::amqp::logs::AmqpLogs;
use crate::adapters::amqp::source::AmqpSource;
use crate::adapters::dlib::DlibEncoder;
use crate::adapters::recorded_encoder::RecordedEncoder;
use crate::adapters::redis_index::RedisIndex;
use crate::http::Health;
use crate::metrics::{Gauges, Metrics};
use crate::orchestrator::Orchestrator;
use crate::ports::FaceEncoder;
use crate::runner;
use anyhow::Context as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Run the face-matching worker against RabbitMQ and Redis.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Redis.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Matching and retries.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Face detection and encoding.
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Unacknowledged messages held at once [default: the concurrency]
    #[arg(long, env = "FACEREC_PREFETCH")]
    pub prefetch: Option<u16>,
    /// Name used in log routing keys `<name>.worker.info` [default: the host name]
    #[arg(long, env = "FACEREC_HOSTNAME")]
    pub hostname: Option<String>,
    /// Replay encodings recorded by `facerec record` instead of running dlib (tests, demos).
    #[arg(long, env = "FACEREC_ENCODINGS", value_name = "FILE")]
    pub encodings: Option<PathBuf>,
    /// With --encodings: pretend each image takes this long to encode (fault drills, benchmarks).
    #[arg(long, env = "FACEREC_RECORDED_DELAY_MS", default_value_t = 0)]
    pub recorded_delay_ms: u64,
    /// Address of /healthz, /readyz and /metrics ("off" to disable).
    #[arg(long, env = "FACEREC_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: String,
}

/// The worker's parts, filled in as they come up, for /readyz and /metrics.
#[derive(Default)]
struct Parts {
    index: OnceLock<Arc<RedisIndex>>,
    source: OnceLock<Arc<AmqpSource>>,
    logs: OnceLock<Arc<AmqpLogs>>,
}

impl Health for Parts {
    fn not_ready(&self) -> Option<String> {
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

/// Runs the worker until SIGTERM/SIGINT.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    println!("Connecting to rabbitmq({}) and redis({})", args.broker.host(), args.redis.host());
    let shutdown = crate::shutdown::on_signals();
    let parts = Arc::new(Parts::default());
    let metrics = Arc::new(Metrics::default());
    if args.http_addr != "off" {
        let addr = args.http_addr.parse().with_context(|| format!("FACEREC_HTTP_ADDR {:?}", args.http_addr))?;
        let bound = crate::http::serve(addr, parts.clone(), metrics.clone(), shutdown.clone()).await?;
        tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");
    }
    let encoder: Arc<dyn FaceEncoder> = match &args.encodings {
        Some(file) => Arc::new(
            RecordedEncoder::load(file)
                .map_err(anyhow::Error::msg)?
                .with_delay(Duration::from_millis(args.recorded_delay_ms)),
        ),
        None => Arc::new(DlibEncoder::start(args.encoder.settings()).map_err(anyhow::Error::msg)?),
    };
    let host = args.hostname.clone().unwrap_or_else(crate::log_lines::hostname);
    let settings = args.pipeline.settings(&host);
    let options = args.pipeline.run_options();
    let prefetch = args.prefetch.unwrap_or(u16::try_from(options.concurrency).unwrap_or(u16::MAX)).max(1);
    let amqp = args.broker.settings(prefetch, settings.max_attempts.saturating_mul(4)).map_err(anyhow::Error::msg)?;
    let redis_settings = args.redis.settings().map_err(anyhow::Error::msg)?;

    let Some(index) = with_backoff("Redis", &shutdown, || RedisIndex::connect(redis_settings.clone())).await else {
        return Ok(());
    };
    let index = Arc::new(index);
    let _ = parts.index.set(index.clone());
    if with_backoff("loading faces from Redis", &shutdown, || index.load_cache()).await.is_none() {
        return Ok(());
    }
    let logs = Arc::new(AmqpLogs::start(amqp.clone()));
    let _ = parts.logs.set(logs.clone());
    let source = Arc::new(AmqpSource::start(amqp, settings.max_attempts));
    let _ = parts.source.set(source.clone());
    let orchestrator = Arc::new(Orchestrator::new(encoder, index.clone(), logs.clone(), settings));
    tracing::info!(concurrency = options.concurrency, prefetch, host, "worker running");
    let result = runner::run(orchestrator, source.clone(), options, shutdown, metrics).await;
    tracing::info!("stopping: closing connections");
    source.close().await;
    logs.close(Duration::from_secs(5)).await;
    index.close().await;
    let stats = result?;
    tracing::info!(?stats, "worker stopped");
    Ok(())
}

/// Retries `attempt` with exponential backoff (0.25 s to 30 s) until it succeeds or the
/// shutdown token fires (then `None`): a worker waits for its services, it does not crash.
async fn with_backoff<T, E: std::fmt::Display, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(250);
    loop {
        match attempt().await {
            Ok(v) => return Some(v),
            Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "{what} not available yet"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}
