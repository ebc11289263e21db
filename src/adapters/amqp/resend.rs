//! [`ResendingPublisher`]: a producer that survives the loss of its broker. Each image is
//! sent until the broker confirms it: when the link drops (a node of the cluster stopped,
//! a restart) or a confirm does not come, it reconnects (to the next broker of
//! `RABBITMQ_URLS` when there are several) with the shared [`Backoff`] and sends the same
//! message again. A message counts as sent only once confirmed, so nothing confirmed is
//! lost; a message whose confirm was lost may arrive twice, which is harmless because the
//! workers process by content hash (idempotently).

use super::client::ImagePublisher;
use super::{AmqpError, AmqpSettings};
use crate::backoff::Backoff;
use crate::hash::ImageHash;
use std::time::{Duration, Instant};

/// Publishes images with publisher confirms, re-sending across reconnections.
pub struct ResendingPublisher {
    settings: AmqpSettings,
    purpose: String,
    give_up_after: Duration,
    link: Option<ImagePublisher>,
    resent: u64,
    connects: u64,
}

impl ResendingPublisher {
    /// Connects, waiting at most `give_up_after` for a broker to answer.
    ///
    /// # Errors
    /// No broker answered in time, or one refused the declarations (unroutable topology,
    /// bad credentials keep failing until the deadline).
    pub async fn connect(settings: AmqpSettings, purpose: &str, give_up_after: Duration) -> Result<Self, AmqpError> {
        let mut publisher =
            Self { settings, purpose: purpose.to_owned(), give_up_after, link: None, resent: 0, connects: 0 };
        let deadline = Instant::now() + give_up_after;
        let mut backoff = Backoff::default();
        loop {
            match publisher.reconnect().await {
                Ok(()) => return Ok(publisher),
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(error = %e, "RabbitMQ not reachable; trying again");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn reconnect(&mut self) -> Result<(), AmqpError> {
        self.drop_link().await;
        self.link = Some(ImagePublisher::connect(self.settings.clone(), &self.purpose).await?);
        self.connects += 1;
        Ok(())
    }

    /// Closes the current link, if any, without waiting on a broker that is gone.
    async fn drop_link(&mut self) {
        if let Some(old) = self.link.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), old.shut()).await;
        }
    }

    /// Sends one image until the broker confirms it (see the module documentation).
    ///
    /// # Errors
    /// No queue is bound for it (a configuration mistake: not retried), or no broker
    /// confirmed it within the time given to [`ResendingPublisher::connect`].
    pub async fn publish_image(
        &mut self,
        hash: &ImageHash,
        name: &str,
        image: &[u8],
        raw: bool,
    ) -> Result<(), AmqpError> {
        let deadline = Instant::now() + self.give_up_after;
        let mut backoff = Backoff::default();
        let mut tries = 0u32;
        loop {
            let sent = match self.link.as_ref().filter(|l| l.is_connected()) {
                Some(link) => link.publish_image(hash, name, image, raw).await,
                None => match self.reconnect().await {
                    Ok(()) => continue,
                    Err(e) => Err(e),
                },
            };
            match sent {
                Ok(()) => {
                    if tries > 0 {
                        self.resent += 1;
                    }
                    return Ok(());
                }
                Err(e @ AmqpError::Unroutable { .. }) => return Err(e),
                Err(e) if Instant::now() < deadline => {
                    tries += 1;
                    tracing::warn!(error = %e, %hash, "not confirmed; sending it again after reconnecting");
                    self.drop_link().await;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Images that needed more than one send.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// Connections made (more than one: reconnections).
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Closes the link.
    pub async fn close(mut self) {
        if let Some(link) = self.link.take() {
            link.close().await;
        }
    }
}
