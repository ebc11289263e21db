//! The REST front-end, assembled: Redis index (reads), the work exchange with confirms
//! (submissions), the `logs` exchange, the SSRF-safe fetcher, and the listener. It serves
//! at once; Redis is connected in the background (until then reads get 503 and `/readyz`
//! says why), RabbitMQ is reconnected by [`AmqpQueue`] itself.
//!
//! [`bind`] and [`router`] are shared with `facerec serve` (`super::serve`), which puts the
//! same front-end over the in-process queue and the embedded index.

use super::AppError;
use crate::adapters::amqp::AmqpSettings;
use crate::adapters::amqp::logs::AmqpLogs;
use crate::adapters::amqp::queue::AmqpQueue;
use crate::adapters::redis_index::{RedisIndex, RedisSettings};
use crate::api::fetch::{FetchPolicy, SafeFetcher};
use crate::api::ports::Readiness;
use crate::api::server::ServerLimits;
use crate::api::{Api, ApiPorts, ApiSettings};
use crate::backoff::Backoff;
use crate::hash::ImageHash;
use crate::ports::{
    FaceEncoder, FaceIndex, ImageFailure, ImageMatch, ImageQueue, ImageRecord, IndexError, LogSink, NewImage,
};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The HTTP front-end's own settings, the same for `facerec api` and `facerec serve`.
#[derive(Debug, Clone)]
pub struct FrontEnd {
    /// Where to listen (`FACEREC_API_ADDR`).
    pub addr: SocketAddr,
    /// Limits, token, host name.
    pub api: ApiSettings,
    /// What URLs may be fetched.
    pub fetch: FetchPolicy,
    /// Connection cap and header timeout.
    pub server: ServerLimits,
}

/// Everything `facerec api` needs, already checked.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// RabbitMQ (work exchange and logs).
    pub amqp: AmqpSettings,
    /// Redis.
    pub redis: RedisSettings,
    /// Address, limits, token, fetch policy.
    pub front: FrontEnd,
}

/// Binds the front-end's address; returns the listener and the address it got (port 0:
/// any free port).
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(front: &FrontEnd) -> Result<(TcpListener, SocketAddr), AppError> {
    let listener = crate::api::server::bind(front.addr)
        .await
        .map_err(|source| AppError::Io { what: format!("FACEREC_API_ADDR {}", front.addr), source })?;
    let bound = listener.local_addr().map_err(|source| AppError::Io { what: "local address".into(), source })?;
    Ok((listener, bound))
}

/// The router (every route, the page, health) over these ports, with the SSRF-safe
/// fetcher of `front`'s policy. `encoder`: the one `POST /api/v1/forget` finds a photo's
/// faces with (`None` in `facerec api`, which has none: the route answers 501 there).
pub fn router(
    front: &FrontEnd,
    index: Arc<dyn FaceIndex>,
    queue: Arc<dyn ImageQueue>,
    logs: Arc<dyn LogSink>,
    readiness: Arc<dyn Readiness>,
    encoder: Option<Arc<dyn FaceEncoder>>,
) -> axum::Router {
    let fetcher = Arc::new(SafeFetcher::new(front.fetch.clone()));
    crate::api::router(Api::new(ApiPorts { index, queue, fetcher, logs, readiness, encoder }, front.api.clone()))
}

/// The Redis index once it is connected.
#[derive(Default)]
struct LateIndex(OnceLock<Arc<RedisIndex>>);

impl LateIndex {
    fn get(&self) -> Result<&Arc<RedisIndex>, IndexError> {
        self.0.get().ok_or_else(|| IndexError::Unavailable("still connecting to Redis".into()))
    }
}

#[async_trait]
impl FaceIndex for LateIndex {
    async fn is_known(&self, hash: &ImageHash) -> Result<bool, IndexError> {
        self.get()?.is_known(hash).await
    }
    async fn add_name(&self, hash: &ImageHash, name: &str) -> Result<(), IndexError> {
        self.get()?.add_name(hash, name).await
    }
    async fn add_image(&self, image: &NewImage, tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        self.get()?.add_image(image, tolerance).await
    }
    async fn image(&self, hash: &ImageHash) -> Result<Option<ImageRecord>, IndexError> {
        self.get()?.image(hash).await
    }
    async fn hash_of(&self, name: &str) -> Result<Option<ImageHash>, IndexError> {
        self.get()?.hash_of(name).await
    }
    async fn thumbnail(&self, hash: &ImageHash) -> Result<Option<Vec<u8>>, IndexError> {
        self.get()?.thumbnail(hash).await
    }
    async fn record_failure(&self, hash: &ImageHash, reason: &str) -> Result<(), IndexError> {
        self.get()?.record_failure(hash, reason).await
    }
    async fn failure(&self, hash: &ImageHash) -> Result<Option<ImageFailure>, IndexError> {
        self.get()?.failure(hash).await
    }
    async fn recent(&self, limit: usize, cursor: Option<String>) -> Result<crate::ports::ImagePage, IndexError> {
        self.get()?.recent(limit, cursor).await
    }
    async fn forget(&self, hashes: &[ImageHash]) -> Result<crate::ports::Forgotten, IndexError> {
        self.get()?.forget(hashes).await
    }
    async fn find_faces(&self, faces: &[crate::face::Encoding], tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        self.get()?.find_faces(faces, tolerance).await
    }
    async fn match_names(&self, hash: &ImageHash) -> Result<std::collections::BTreeSet<String>, IndexError> {
        self.get()?.match_names(hash).await
    }
    async fn ping(&self) -> Result<(), IndexError> {
        self.get()?.ping().await
    }
}

struct Parts {
    index: Arc<LateIndex>,
    queue: Arc<AmqpQueue>,
}

impl Readiness for Parts {
    fn not_ready(&self) -> Option<String> {
        match self.index.0.get() {
            None => return Some("connecting to Redis".into()),
            Some(index) if !index.is_connected() => return Some("Redis connection lost".into()),
            Some(_) => {}
        }
        (!self.queue.is_connected()).then(|| "not connected to RabbitMQ".into())
    }
}

/// Serves until `shutdown`, then closes the connections.
///
/// # Errors
/// The address cannot be bound, or Redis refuses the settings.
pub async fn run(config: ApiConfig, shutdown: CancellationToken) -> Result<(), AppError> {
    let front = &config.front;
    let (listener, bound) = bind(front).await?;
    let index = Arc::new(LateIndex::default());
    let queue = Arc::new(AmqpQueue::start(config.amqp.clone()));
    let logs = Arc::new(AmqpLogs::start(config.amqp.clone()));
    let parts = Arc::new(Parts { index: index.clone(), queue: queue.clone() });
    // No encoder: this front-end only queues images (erasing by photo answers 501).
    let router = router(front, index.clone(), queue.clone(), logs.clone(), parts, None);
    let connecting = tokio::spawn(connect_redis(config.redis.clone(), index.clone(), shutdown.clone()));
    tracing::info!(address = %bound, allow_private_urls = front.fetch.allow_private, "REST front-end listening");
    crate::api::server::serve(listener, router, front.server, shutdown).await;
    tracing::info!("stopping: closing connections");
    connecting.abort();
    let connected = connecting.await.ok().flatten().transpose();
    queue.close().await;
    logs.close(Duration::from_secs(5)).await;
    if let Some(index) = index.0.get() {
        index.close().await;
    }
    connected.map(|_| ())
}

/// Connects to Redis with [`Backoff`] until it answers, a refusal, or `shutdown`.
async fn connect_redis(
    settings: RedisSettings,
    index: Arc<LateIndex>,
    shutdown: CancellationToken,
) -> Option<Result<(), AppError>> {
    let mut backoff = Backoff::default();
    loop {
        match RedisIndex::connect(settings.clone()).await {
            Ok(redis) => {
                let _ = index.0.set(Arc::new(redis));
                return Some(Ok(()));
            }
            Err(e) if e.is_transient() => tracing::warn!(error = %e, "Redis not available yet; retrying"),
            Err(e) => {
                tracing::error!(error = %e, "Redis refused the settings");
                return Some(Err(e.into()));
            }
        }
        if !backoff.wait(&shutdown).await {
            return None;
        }
    }
}
