//! RabbitMQ for the command-line tools: publishing images (`submit`), following the
//! `logs` exchange (`logs`) and copying messages out of a queue (`capture`). The worker's
//! long-lived connections are in [`super::source`] and [`super::logs`].

use super::publish::publish_confirmed;
use super::topology::{declare_work, ensure_exchange};
use super::{AmqpError, AmqpSettings, Frames, connect_any, text_headers};
use crate::capture::CapturedMessage;
use crate::hash::ImageHash;
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes images to the work exchange with publisher confirms.
pub struct ImagePublisher {
    connection: Connection,
    channel: Channel,
    settings: AmqpSettings,
}

impl ImagePublisher {
    /// Connects and declares the work queues (with no worker started yet, an undeclared
    /// queue would drop the images).
    ///
    /// # Errors
    /// RabbitMQ is unreachable or refuses a declaration.
    pub async fn connect(settings: AmqpSettings, purpose: &str) -> Result<Self, AmqpError> {
        Self::connect_within(settings, purpose, CONNECT_TIMEOUT).await
    }

    /// [`ImagePublisher::connect`], giving up on the connection after `timeout`.
    ///
    /// # Errors
    /// RabbitMQ is unreachable or refuses a declaration.
    pub async fn connect_within(settings: AmqpSettings, purpose: &str, timeout: Duration) -> Result<Self, AmqpError> {
        let connection = connect_any(&settings, purpose, Frames::Small, timeout).await?;
        declare_work(&connection, &settings).await.map_err(AmqpError::channel("declaring the queues"))?;
        let channel = connection.create_channel().await.map_err(AmqpError::channel("opening a channel"))?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(AmqpError::channel("confirm.select"))?;
        Ok(Self { connection, channel, settings })
    }

    /// Publishes one image persistently and waits for the broker's confirm: as JSON, or
    /// with `raw` as the bare image with `hash` and `name` headers.
    ///
    /// # Errors
    /// The broker refused it, no queue took it, or the connection failed.
    pub async fn publish_image(&self, hash: &ImageHash, name: &str, image: &[u8], raw: bool) -> Result<(), AmqpError> {
        let (body, properties) = if raw {
            let mut headers = FieldTable::default();
            headers.insert("hash".into(), AMQPValue::LongString(hash.as_str().into()));
            headers.insert("name".into(), AMQPValue::LongString(name.into()));
            (image.to_vec(), BasicProperties::default().with_headers(headers))
        } else {
            let body = crate::message::json_body(hash, name, image);
            (body, BasicProperties::default().with_content_type("application/json".into()))
        };
        publish_confirmed(&self.channel, &self.settings.exchange, &self.settings.routing_key, &body, properties, true)
            .await
    }

    /// Messages ready in the work queue (a passive declare on a channel of its own: a
    /// missing queue closes that channel, never the confirm channel).
    ///
    /// # Errors
    /// The queue does not exist or the connection failed.
    pub async fn queue_depth(&self) -> Result<u64, AmqpError> {
        let channel = self.connection.create_channel().await.map_err(AmqpError::channel("opening a channel"))?;
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let queue = channel
            .queue_declare(self.settings.queue.as_str().into(), options, FieldTable::default())
            .await
            .map_err(AmqpError::channel("reading the queue depth"))?;
        let _ = channel.close(200, "done".into()).await;
        Ok(u64::from(queue.message_count()))
    }

    /// Whether the connection and channel are still open.
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }

    /// Closes the connection, for a publisher shared behind an `Arc`.
    pub async fn shut(&self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// A live feed of the `logs` exchange: `(routing key, line)` pairs.
pub struct LogTail {
    connection: Connection,
    consumer: lapin::Consumer,
}

impl LogTail {
    /// Binds an exclusive, auto-deleted queue to the logs exchange with `pattern`.
    ///
    /// # Errors
    /// RabbitMQ is unreachable or refuses a declaration.
    pub async fn open(settings: &AmqpSettings, pattern: &str) -> Result<Self, AmqpError> {
        let connection = connect_any(settings, "facerec logs", Frames::Small, CONNECT_TIMEOUT).await?;
        ensure_exchange(&connection, &settings.logs_exchange, ExchangeKind::Topic, settings.logs_durable)
            .await
            .map_err(AmqpError::channel("declaring the logs exchange"))?;
        let channel = connection.create_channel().await.map_err(AmqpError::channel("opening a channel"))?;
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let queue = channel
            .queue_declare("".into(), options, FieldTable::default())
            .await
            .map_err(AmqpError::channel("declaring the listening queue"))?;
        let name = queue.name().as_str().to_owned();
        channel
            .queue_bind(
                name.as_str().into(),
                settings.logs_exchange.as_str().into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(AmqpError::channel("binding the listening queue"))?;
        let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let consumer = channel
            .basic_consume(name.as_str().into(), "facerec-logs".into(), no_ack, FieldTable::default())
            .await
            .map_err(AmqpError::channel("basic.consume"))?;
        Ok(Self { connection, consumer })
    }

    /// The next line; `None` when the feed ended.
    ///
    /// # Errors
    /// The connection was lost.
    pub async fn next(&mut self) -> Option<Result<(String, Vec<u8>), AmqpError>> {
        match self.consumer.next().await? {
            Ok(d) => Some(Ok((d.routing_key.as_str().to_owned(), d.data))),
            Err(e) => Some(Err(AmqpError::Channel { what: "consuming the logs", source: e })),
        }
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.connection.close(200, "bye".into()).await;
    }
}

/// Copies messages out of a queue. Every message is held unacknowledged until
/// [`QueueReader::finish`], so none is fetched twice; it then removes them or puts them back.
pub struct QueueReader {
    connection: Connection,
    channel: Channel,
    queue: String,
    held: Vec<lapin::Acker>,
}

impl QueueReader {
    /// Connects for reading `queue`.
    ///
    /// # Errors
    /// RabbitMQ is unreachable.
    pub async fn open(settings: &AmqpSettings, queue: &str) -> Result<Self, AmqpError> {
        let connection = connect_any(settings, "facerec capture", Frames::Broker, CONNECT_TIMEOUT).await?;
        let channel = connection.create_channel().await.map_err(AmqpError::channel("opening a channel"))?;
        Ok(Self { connection, channel, queue: queue.to_owned(), held: Vec::new() })
    }

    /// The next message, or `None` when the queue is empty now.
    ///
    /// # Errors
    /// The connection failed or the queue does not exist.
    pub async fn get(&mut self) -> Result<Option<CapturedMessage>, AmqpError> {
        let Some(message) = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions::default())
            .await
            .map_err(AmqpError::channel("basic.get"))?
        else {
            return Ok(None);
        };
        let d = &message.delivery;
        let captured = CapturedMessage {
            exchange: d.exchange.as_str().to_owned(),
            routing_key: d.routing_key.as_str().to_owned(),
            redelivered: d.redelivered,
            body: d.data.clone(),
            headers: text_headers(d.properties.headers().as_ref()),
            content_type: d.properties.content_type().as_ref().map(|s| s.as_str().to_owned()),
            content_encoding: d.properties.content_encoding().as_ref().map(|s| s.as_str().to_owned()),
            delivery_mode: *d.properties.delivery_mode(),
            message_id: d.properties.message_id().as_ref().map(|s| s.as_str().to_owned()),
            timestamp: *d.properties.timestamp(),
        };
        self.held.push(message.delivery.acker.clone());
        Ok(Some(captured))
    }

    /// Removes (`remove`) or requeues every message read, then closes.
    ///
    /// # Errors
    /// An acknowledgement failed (the broker then requeues what is left when the
    /// connection closes).
    pub async fn finish(self, remove: bool) -> Result<(), AmqpError> {
        for acker in &self.held {
            if remove {
                acker.ack(BasicAckOptions::default()).await.map_err(AmqpError::channel("basic.ack"))?;
            } else {
                acker
                    .nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() })
                    .await
                    .map_err(AmqpError::channel("basic.nack"))?;
            }
        }
        let _ = self.connection.close(200, "done".into()).await;
        Ok(())
    }
}
