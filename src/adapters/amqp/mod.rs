//! RabbitMQ adapters (lapin): the `toWorker` [`MessageSource`](crate::ports::MessageSource),
//! the `logs` [`LogSink`](crate::ports::LogSink), and the publishing used by `submit`,
//! dead-lettering and requeueing.
//!
//! lapin does not recover connections by itself; [`source::AmqpSource`] and
//! [`logs::AmqpLogs`] each keep a task that connects with backoff, declares what they need
//! and resumes.

pub mod logs;
pub mod publish;
pub mod source;
pub mod topology;

use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which kind of queue to declare for `toWorker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueType {
    /// Classic durable queue: what producers written for the seed declare. Attempts are
    /// counted in a message header; a redelivered message is re-published with its count
    /// raised, so a message that crashes workers is bounded too.
    Classic,
    /// Quorum queue with a delivery limit: the broker counts deliveries itself.
    Quorum,
}

/// Names and limits of the RabbitMQ side.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:5672/vhost` or `amqps://`.
    pub url: String,
    /// Direct exchange images are published to.
    pub exchange: String,
    /// Queue the workers consume.
    pub queue: String,
    /// Binding key of the queue on the exchange.
    pub routing_key: String,
    /// Queue dead letters go to.
    pub dead_letter_queue: String,
    /// Classic or quorum.
    pub queue_type: QueueType,
    /// Unacknowledged deliveries the broker sends this worker at most.
    pub prefetch: u16,
    /// For quorum queues: deliveries before the broker dead-letters by itself (a backstop
    /// above the worker's own limit).
    pub delivery_limit: u32,
    /// Topic exchange for progress lines.
    pub logs_exchange: String,
    /// Whether to declare the logs exchange durable when creating it (pika's default is not).
    pub logs_durable: bool,
    /// Name shown in the RabbitMQ management UI.
    pub connection_name: String,
}

impl AmqpSettings {
    /// The seed's names with `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            exchange: "toWorker".into(),
            queue: "toWorker".into(),
            routing_key: "toWorker".into(),
            dead_letter_queue: "toWorker.dead".into(),
            queue_type: QueueType::Classic,
            prefetch: 2,
            delivery_limit: 20,
            logs_exchange: "logs".into(),
            logs_durable: false,
            connection_name: format!("facerec@{}", crate::log_lines::hostname()),
        }
    }
}

/// Header carrying how many times a message was tried (classic queues).
pub const ATTEMPT_HEADER: &str = "x-facerec-attempt";
/// Header with the reason a message was dead-lettered.
pub const REASON_HEADER: &str = "x-facerec-reason";

/// Opens a connection, giving up after `timeout`.
///
/// # Errors
/// The broker is unreachable, refuses the credentials, or does not answer in time.
pub async fn connect(url: &str, name: &str, timeout: Duration) -> Result<Connection, String> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(timeout, Connection::connect(url, properties)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Text values of AMQP headers (strings and numbers), as the orchestrator sees them.
pub fn text_headers(table: Option<&FieldTable>) -> BTreeMap<String, String> {
    let Some(table) = table else {
        return BTreeMap::new();
    };
    table
        .inner()
        .iter()
        .filter_map(|(k, v)| {
            let text = match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.as_str().to_owned(),
                AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned(),
                AMQPValue::ShortShortInt(n) => n.to_string(),
                AMQPValue::ShortShortUInt(n) => n.to_string(),
                AMQPValue::ShortInt(n) => n.to_string(),
                AMQPValue::ShortUInt(n) => n.to_string(),
                AMQPValue::LongInt(n) => n.to_string(),
                AMQPValue::LongUInt(n) => n.to_string(),
                AMQPValue::LongLongInt(n) => n.to_string(),
                _ => return None,
            };
            Some((k.as_str().to_owned(), text))
        })
        .collect()
}

/// An AMQP URL with its password replaced by `***`, for logs.
pub fn redacted(url: &str) -> String {
    crate::config::redact_url(url)
}
