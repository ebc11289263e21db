//! [`AmqpQueue`]: the work exchange as an [`ImageQueue`] for the REST front-end.
//!
//! One connection with one confirm-mode channel, shared by every request (publishes run
//! concurrently on it; each waits for its own confirm). A keeper task reconnects with
//! [`Backoff`] whenever the link is down, so readiness recovers without traffic; a submit
//! that finds no link tries once more itself, within [`AmqpQueue::CONNECT_TIMEOUT`], and
//! otherwise fails: the caller answers 503 rather than hold a client for long.

use super::AmqpSettings;
use super::client::ImagePublisher;
use crate::backoff::Backoff;
use crate::hash::ImageHash;
use crate::ports::{ImageQueue, QueueError};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The work exchange, with publisher confirms and its own reconnection.
pub struct AmqpQueue {
    inner: Arc<Inner>,
    stop: CancellationToken,
}

struct Inner {
    settings: AmqpSettings,
    /// The current link; `None` or a closed one means "reconnect".
    publisher: tokio::sync::RwLock<Option<Arc<ImagePublisher>>>,
    /// Held while connecting, so a burst of requests makes one connection.
    connecting: tokio::sync::Mutex<()>,
    connects: AtomicU64,
}

impl AmqpQueue {
    /// How long a connection attempt may take before a submission fails.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// How long the broker may take to confirm one message.
    pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

    /// Starts the keeper task and returns at once (not yet connected).
    pub fn start(settings: AmqpSettings) -> Self {
        let inner = Arc::new(Inner {
            settings,
            publisher: tokio::sync::RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            connects: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        tokio::spawn(keep_connected(inner.clone(), stop.clone()));
        Self { inner, stop }
    }

    /// Whether the link to the broker is up now.
    pub fn is_connected(&self) -> bool {
        self.inner.publisher.try_read().ok().and_then(|p| p.as_ref().map(|p| p.is_connected())).unwrap_or(false)
    }

    /// Connections made so far (more than one: reconnections).
    pub fn connects(&self) -> u64 {
        self.inner.connects.load(Ordering::Relaxed)
    }

    /// Stops reconnecting and closes the link.
    pub async fn close(&self) {
        self.stop.cancel();
        if let Some(p) = self.inner.publisher.write().await.take() {
            p.shut().await;
        }
    }
}

impl Inner {
    /// The open link, connecting if there is none.
    async fn link(&self) -> Result<Arc<ImagePublisher>, QueueError> {
        if let Some(p) = self.publisher.read().await.as_ref().filter(|p| p.is_connected()) {
            return Ok(p.clone());
        }
        let _one = self.connecting.lock().await;
        // Another request may have connected while this one waited.
        if let Some(p) = self.publisher.read().await.as_ref().filter(|p| p.is_connected()) {
            return Ok(p.clone());
        }
        let name = format!("{} api", self.settings.connection_name);
        let publisher = ImagePublisher::connect_within(self.settings.clone(), &name, AmqpQueue::CONNECT_TIMEOUT)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let publisher = Arc::new(publisher);
        self.connects.fetch_add(1, Ordering::Relaxed);
        *self.publisher.write().await = Some(publisher.clone());
        Ok(publisher)
    }

    /// Forgets `broken`, unless another request already replaced it.
    async fn drop_link(&self, broken: &Arc<ImagePublisher>) {
        let mut current = self.publisher.write().await;
        if current.as_ref().is_some_and(|p| Arc::ptr_eq(p, broken)) {
            *current = None;
        }
    }

    async fn publish(&self, hash: &ImageHash, name: &str, image: &[u8]) -> Result<(), QueueError> {
        let link = self.link().await?;
        let sent = tokio::time::timeout(AmqpQueue::CONFIRM_TIMEOUT, link.publish_image(hash, name, image, false)).await;
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e @ (super::AmqpError::Nacked | super::AmqpError::Unroutable { .. }))) => {
                Err(QueueError::Rejected(e.to_string()))
            }
            Ok(Err(e)) => {
                self.drop_link(&link).await;
                Err(QueueError::Unavailable(e.to_string()))
            }
            Err(_) => {
                self.drop_link(&link).await;
                Err(QueueError::Unavailable(format!("no confirm within {:?}", AmqpQueue::CONFIRM_TIMEOUT)))
            }
        }
    }
}

#[async_trait]
impl ImageQueue for AmqpQueue {
    async fn submit(&self, hash: &ImageHash, name: &str, image: &[u8]) -> Result<(), QueueError> {
        match self.inner.publish(hash, name, image).await {
            // A link that died while idle (heartbeats missed, broker restarted) is only
            // noticed on use: try once more on a fresh connection before giving up.
            Err(QueueError::Unavailable(first)) => {
                tracing::debug!(error = %first, "publishing failed; retrying on a new connection");
                self.inner.publish(hash, name, image).await
            }
            other => other,
        }
    }
}

impl Drop for AmqpQueue {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Reconnects whenever the link is down, until `stop`.
async fn keep_connected(inner: Arc<Inner>, stop: CancellationToken) {
    let mut backoff = Backoff::default();
    loop {
        let delay = match inner.link().await {
            Ok(_) => {
                backoff.reset();
                Duration::from_secs(1)
            }
            Err(e) => {
                tracing::warn!(error = %e, "RabbitMQ not reachable; submissions get 503 until it is");
                backoff.next_delay()
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
