//! [`AmqpSource`]: deliveries from the `toWorker` queue, with a reconnect loop.
//!
//! A background task connects (with backoff), declares the topology, sets the prefetch
//! and consumes; deliveries flow to [`MessageSource::next`] through a channel. Each
//! connection has a generation number: a delivery from a connection that has since
//! dropped cannot be settled (the broker has already put it back), so it is skipped.
//!
//! Settling: `Ack` acks. `DeadLetter` publishes the message with its reason to the
//! dead-letter queue, waits for the broker's confirm, then acks. `Requeue` (classic queue)
//! re-publishes with the attempt header raised, confirmed, then acks; (quorum) nacks with
//! requeue and the broker counts. A message the broker redelivers after a worker died is
//! re-published with its attempt (and its count of kills) raised before it is processed
//! again; past `max_attempts` it is handed over with the raised count, and the
//! orchestrator dead-letters it unprocessed, so a message that kills workers stops after
//! `max_attempts` instead of looping forever. `Release` puts a copy back with the attempt
//! unchanged (classic), or nacks with requeue (quorum).
//!
//! A settlement that fails never strands its delivery: it is nacked with requeue, and if
//! even that fails the channel is closed, so the broker takes back everything unacked on
//! it (it would not while the channel lives). A dead-letter queue that vanished is
//! declared again.

use super::publish::publish_confirmed;
use super::topology::{declare_work, ensure_queue};
use super::{ATTEMPT_HEADER, AmqpError, AmqpSettings, Frames, QueueType, REASON_HEADER, connect_any, text_headers};
use crate::backoff::Backoff;
use crate::ports::{Delivery, DeliveryId, KILLS_HEADER, MessageSource, Settlement, SourceError};
use async_trait::async_trait;
use futures::StreamExt as _;
use lapin::Acker;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// The channel deliveries arrive on, on the live connection.
#[derive(Clone)]
struct Link {
    channel: Channel,
    generation: u64,
    /// For declarations on channels of their own (a refused one closes its channel).
    connection: Arc<Connection>,
}

struct Incoming {
    delivery: lapin::message::Delivery,
    generation: u64,
}

struct Pending {
    acker: Acker,
    generation: u64,
    body: Vec<u8>,
    properties: BasicProperties,
    attempt: u32,
}

/// Connection events, for metrics and tests.
#[derive(Debug, Default)]
pub struct AmqpStats {
    /// Successful (re)connections.
    pub connects: AtomicU64,
    /// Messages dead-lettered.
    pub dead_letters: AtomicU64,
    /// Messages re-published after a worker died with them.
    pub redeliveries: AtomicU64,
}

/// The `toWorker` queue as a [`MessageSource`].
pub struct AmqpSource {
    settings: AmqpSettings,
    max_attempts: u32,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Incoming>>,
    link: watch::Receiver<Option<Link>>,
    pending: Mutex<HashMap<DeliveryId, Pending>>,
    next_id: AtomicU64,
    stop: CancellationToken,
    draining: CancellationToken,
    drained: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    stats: Arc<AmqpStats>,
}

impl AmqpSource {
    /// Starts the connection task and returns at once; deliveries arrive once connected.
    /// `max_attempts` is the orchestrator's: past it, a redelivered message is not
    /// re-published but handed over for dead-lettering.
    pub fn start(settings: AmqpSettings, max_attempts: u32) -> Self {
        let (tx, rx) = mpsc::channel(usize::from(settings.prefetch.max(1)));
        let (link_tx, link_rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let (draining, drained) = (CancellationToken::new(), CancellationToken::new());
        let stats = Arc::new(AmqpStats::default());
        let consumer_tag = format!("facerec-{}-{}", settings.hostname, std::process::id());
        let task = tokio::spawn(maintain(
            settings.clone(),
            consumer_tag,
            tx,
            link_tx,
            Tokens { stop: stop.clone(), draining: draining.clone(), drained: drained.clone() },
            stats.clone(),
        ));
        Self {
            settings,
            max_attempts,
            incoming: tokio::sync::Mutex::new(rx),
            link: link_rx,
            pending: Mutex::default(),
            next_id: AtomicU64::new(1),
            stop,
            draining,
            drained,
            task: Mutex::new(Some(task)),
            stats,
        }
    }

    /// Whether a consuming connection is up now.
    pub fn is_connected(&self) -> bool {
        self.link.borrow().is_some()
    }

    /// Connection counters.
    pub fn stats(&self) -> Arc<AmqpStats> {
        self.stats.clone()
    }

    /// Stops consuming and closes the connection; call after the runner has settled what
    /// was in flight. Deliveries the broker had sent ahead (prefetch) but the runner never
    /// took are re-published as they were and acked, so a graceful stop does not count as
    /// a failed attempt for them (if that fails they simply return to the queue).
    pub async fn close(&self) {
        if self.current().is_some() {
            // The connection task cancels the consumer and moves every delivery the broker
            // already sent into the buffer; then the buffer is emptied here.
            self.draining.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), self.drained.cancelled()).await;
            let link = self.current();
            let mut incoming = self.incoming.lock().await;
            while let Ok(Incoming { delivery, generation }) = incoming.try_recv() {
                let Some(link) = link.as_ref().filter(|l| l.generation == generation) else { continue };
                if self.settings.queue_type == QueueType::Quorum || delivery.redelivered {
                    continue; // the broker's own count, or already a redelivery: leave it
                }
                let attempt = attempt_of(&delivery, self.settings.queue_type);
                let _ = self.republish(link, &delivery.acker, &delivery.data, &delivery.properties, attempt, &[]).await;
            }
        }
        self.stop.cancel();
        let task = self.task.lock().expect("lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn current(&self) -> Option<Link> {
        self.link.borrow().clone()
    }

    /// Classic queues: puts a copy back with `attempt` set (and `extra` headers),
    /// confirmed, then acks the original. Nothing is lost if this fails half-way: the
    /// original is still unacked (the caller gives it back).
    async fn republish(
        &self,
        link: &Link,
        acker: &Acker,
        body: &[u8],
        properties: &BasicProperties,
        attempt: u32,
        extra: &[(&str, AMQPValue)],
    ) -> Result<(), SourceError> {
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt));
        for (key, value) in extra {
            headers.insert((*key).into(), value.clone());
        }
        let props = properties.clone().with_headers(headers);
        publish_confirmed(&link.channel, "", &self.settings.queue, body, props, true)
            .await
            .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        ack(acker).await
    }

    /// After a failed settlement: hands the delivery back to the broker now. A nack with
    /// requeue if the channel still takes one; otherwise the channel is closed, which
    /// returns every delivery unacked on it (and makes the connection task reconnect).
    async fn give_back(&self, link: &Link, acker: &Acker) {
        let options = BasicNackOptions { requeue: true, ..BasicNackOptions::default() };
        match acker.nack(options).await {
            Ok(true) => tracing::warn!("settling failed; the delivery was nacked back to its queue"),
            _ => {
                tracing::warn!("settling failed and the delivery cannot be nacked; closing the channel");
                let _ = link.channel.close(406, "a delivery could not be settled".into()).await;
            }
        }
    }

    async fn dead_letter(&self, link: &Link, p: &Pending, reason: &str) -> Result<(), SourceError> {
        let mut headers = p.properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(truncate(reason, 4000).into()));
        headers.insert("x-facerec-queue".into(), AMQPValue::LongString(self.settings.queue.as_str().into()));
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(p.attempt));
        headers.insert("x-facerec-worker".into(), AMQPValue::LongString(self.settings.hostname.as_str().into()));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        headers.insert("x-facerec-dead-lettered-at".into(), AMQPValue::Timestamp(now));
        let props = p.properties.clone().with_headers(headers);
        let dlq = &self.settings.dead_letter_queue;
        match publish_confirmed(&link.channel, "", dlq, &p.body, props.clone(), true).await {
            Ok(()) => {}
            Err(AmqpError::Unroutable { .. }) => {
                // Someone deleted the dead-letter queue: declare it again and retry once.
                tracing::warn!(queue = %dlq, "the dead-letter queue is gone; declaring it again");
                ensure_queue(&link.connection, dlq, FieldTable::default())
                    .await
                    .map_err(|e| SourceError::Unavailable(format!("declaring the dead-letter queue: {e}")))?;
                publish_confirmed(&link.channel, "", dlq, &p.body, props, true)
                    .await
                    .map_err(|e| SourceError::Unavailable(e.to_string()))?;
            }
            Err(e) => return Err(SourceError::Unavailable(e.to_string())),
        }
        ack(&p.acker).await?;
        self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Acks; an acker that is poisoned (its channel closed) or used is an error, not success.
async fn ack(acker: &Acker) -> Result<(), SourceError> {
    match acker.ack(BasicAckOptions::default()).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(SourceError::Unavailable("the delivery's channel is closed; it was not acked".into())),
        Err(e) => Err(SourceError::Unavailable(e.to_string())),
    }
}

fn text(value: &str, max: usize) -> AMQPValue {
    AMQPValue::LongString(truncate(value, max).into())
}

fn kills_of(delivery: &lapin::message::Delivery) -> u32 {
    text_headers(delivery.properties.headers().as_ref()).get(KILLS_HEADER).and_then(|k| k.parse().ok()).unwrap_or(0)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn attempt_of(delivery: &lapin::message::Delivery, queue_type: QueueType) -> u32 {
    let headers = text_headers(delivery.properties.headers().as_ref());
    match queue_type {
        QueueType::Classic => headers.get(ATTEMPT_HEADER).and_then(|a| a.parse().ok()).unwrap_or(1).max(1),
        // The broker counts earlier deliveries in x-delivery-count (absent on the first).
        QueueType::Quorum => headers.get("x-delivery-count").and_then(|c| c.parse::<u32>().ok()).map_or(1, |c| c + 1),
    }
}

impl AmqpSource {
    /// Back to the queue with `attempt` (classic); quorum queues count by themselves.
    async fn put_back(&self, link: &Link, p: &Pending, attempt: u32, reason: &str) -> Result<(), SourceError> {
        match self.settings.queue_type {
            QueueType::Classic => {
                let extra = [("x-facerec-last-error", text(reason, 1000))];
                self.republish(link, &p.acker, &p.body, &p.properties, attempt, &extra).await
            }
            QueueType::Quorum => {
                let options = BasicNackOptions { requeue: true, ..BasicNackOptions::default() };
                match p.acker.nack(options).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(SourceError::Unavailable("the delivery's channel is closed".into())),
                    Err(e) => Err(SourceError::Unavailable(e.to_string())),
                }
            }
        }
    }
}

#[async_trait]
impl MessageSource for AmqpSource {
    async fn next(&self) -> Result<Option<Delivery>, SourceError> {
        let mut incoming = self.incoming.lock().await;
        loop {
            let Some(Incoming { delivery, generation }) = incoming.recv().await else {
                return Ok(None); // the connection task ended (close was called)
            };
            let Some(link) = self.current().filter(|l| l.generation == generation) else {
                continue; // its connection is gone; the broker has put it back already
            };
            let mut attempt = attempt_of(&delivery, self.settings.queue_type);
            let mut kills = None;
            if delivery.redelivered && self.settings.queue_type == QueueType::Classic {
                // A worker took it and never settled it: count that as an attempt.
                attempt += 1;
                let killed = kills_of(&delivery) + 1;
                if attempt <= self.max_attempts {
                    self.stats.redeliveries.fetch_add(1, Ordering::Relaxed);
                    let extra = [
                        ("x-facerec-note", text("redelivered: a worker stopped while processing it", 1000)),
                        (KILLS_HEADER, AMQPValue::LongUInt(killed)),
                    ];
                    if let Err(e) = self
                        .republish(&link, &delivery.acker, &delivery.data, &delivery.properties, attempt, &extra)
                        .await
                    {
                        tracing::warn!(error = %e, "could not re-publish a redelivered message; giving it back");
                        self.give_back(&link, &delivery.acker).await;
                    }
                    continue;
                }
                // Past the limit: handed over with the raised counts, so the orchestrator
                // dead-letters it without processing it again.
                kills = Some(killed);
            }
            let id = DeliveryId(self.next_id.fetch_add(1, Ordering::Relaxed));
            let mut headers = text_headers(delivery.properties.headers().as_ref());
            if let Some(killed) = kills {
                headers.insert(KILLS_HEADER.to_owned(), killed.to_string());
            }
            let body = delivery.data;
            self.pending.lock().expect("lock").insert(
                id,
                Pending {
                    acker: delivery.acker,
                    generation,
                    body: body.clone(),
                    properties: delivery.properties,
                    attempt,
                },
            );
            return Ok(Some(Delivery { id, body, headers, attempt }));
        }
    }

    async fn settle(&self, id: DeliveryId, settlement: Settlement) -> Result<(), SourceError> {
        let pending = self
            .pending
            .lock()
            .expect("lock")
            .remove(&id)
            .ok_or_else(|| SourceError::Fatal(format!("delivery {} is unknown or already settled", id.0)))?;
        let link = self
            .current()
            .filter(|l| l.generation == pending.generation)
            .ok_or_else(|| SourceError::Unavailable("the connection dropped; the broker will redeliver".into()))?;
        let result = match settlement {
            Settlement::Ack => ack(&pending.acker).await,
            Settlement::DeadLetter { reason } => {
                tracing::warn!(%reason, "dead-lettering a message");
                self.dead_letter(&link, &pending, &reason).await
            }
            Settlement::Requeue { reason } => self.put_back(&link, &pending, pending.attempt + 1, &reason).await,
            Settlement::Release { reason } => self.put_back(&link, &pending, pending.attempt, &reason).await,
        };
        if result.is_err() {
            self.give_back(&link, &pending.acker).await;
        }
        result
    }
}

/// How `close` steers the connection task.
struct Tokens {
    /// Stop everything and close the connection.
    stop: CancellationToken,
    /// Stop consuming, but keep the connection for settling what was delivered.
    draining: CancellationToken,
    /// Set by the task once every delivery sent by the broker is in the buffer.
    drained: CancellationToken,
}

/// The connection task: connect, declare, consume, and start over when anything drops.
async fn maintain(
    settings: AmqpSettings,
    consumer_tag: String,
    tx: mpsc::Sender<Incoming>,
    link_tx: watch::Sender<Option<Link>>,
    tokens: Tokens,
    stats: Arc<AmqpStats>,
) {
    let Tokens { stop, draining, drained } = tokens;
    let mut backoff = Backoff::default();
    let mut generation = 0u64;
    loop {
        let attempt = tokio::select! {
            () = stop.cancelled() => return,
            () = draining.cancelled() => { drained.cancel(); stop.cancelled().await; return; }
            r = open(&settings, &consumer_tag) => r,
        };
        let (connection, channel, mut consumer) = match attempt {
            Ok(parts) => parts,
            Err(e) => {
                tracing::warn!(error = %e, "cannot consume from RabbitMQ; retrying");
                if !backoff.wait(&stop).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        generation += 1;
        let connection = Arc::new(connection);
        stats.connects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(queue = %settings.queue, prefetch = settings.prefetch, "consuming from RabbitMQ");
        let _ = link_tx.send(Some(Link { channel: channel.clone(), generation, connection: connection.clone() }));
        let lost = loop {
            tokio::select! {
                () = stop.cancelled() => break false,
                () = draining.cancelled() => break false,
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        if tx.send(Incoming { delivery, generation }).await.is_err() {
                            break false;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "RabbitMQ connection lost; reconnecting");
                        break true;
                    }
                    None => {
                        tracing::warn!("RabbitMQ consumer ended; reconnecting");
                        break true;
                    }
                },
            }
        };
        if !lost {
            // Stopping: cancel the consumer, move what the broker already sent into the
            // buffer, and keep the connection until `close` has settled the buffer.
            let _ = channel.basic_cancel(consumer_tag.as_str().into(), BasicCancelOptions::default()).await;
            while let Ok(Some(Ok(delivery))) = tokio::time::timeout(Duration::from_millis(200), consumer.next()).await {
                if tx.send(Incoming { delivery, generation }).await.is_err() {
                    break;
                }
            }
            drained.cancel();
            stop.cancelled().await;
            let _ = link_tx.send(None);
            let _ = connection.close(200, "worker stopping".into()).await;
            return;
        }
        let _ = link_tx.send(None);
        let _ = connection.close(200, "reconnecting".into()).await;
    }
}

async fn open(
    settings: &AmqpSettings,
    consumer_tag: &str,
) -> Result<(Connection, Channel, lapin::Consumer), AmqpError> {
    let connection = connect_any(settings, &settings.connection_name, Frames::Broker, Duration::from_secs(10)).await?;
    declare_work(&connection, settings).await.map_err(AmqpError::channel("declaring the queues"))?;
    let channel = connection.create_channel().await.map_err(AmqpError::channel("opening a channel"))?;
    channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(AmqpError::channel("confirm.select"))?;
    channel
        .basic_qos(settings.prefetch.max(1), BasicQosOptions::default())
        .await
        .map_err(AmqpError::channel("basic.qos"))?;
    let consumer = channel
        .basic_consume(
            settings.queue.as_str().into(),
            consumer_tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(AmqpError::channel("basic.consume"))?;
    Ok((connection, channel, consumer))
}
