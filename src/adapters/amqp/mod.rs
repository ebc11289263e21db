//! RabbitMQ adapters (lapin): the `toWorker` [`MessageSource`](crate::ports::MessageSource),
//! the `logs` [`LogSink`](crate::ports::LogSink), and the publishing used by `submit`,
//! dead-lettering and requeueing.
//!
//! lapin does not recover connections by itself; [`source::AmqpSource`] and
//! [`logs::AmqpLogs`] each keep a task that connects with backoff, declares what they need
//! and resumes.

pub mod client;
pub mod logs;
pub mod publish;
pub mod queue;
pub mod resend;
pub mod source;
pub mod topology;

use crate::config::ServiceUrl;
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
    /// `amqp://user:password@host:5672/vhost` or `amqps://` (shown redacted): the first
    /// broker of [`AmqpSettings::brokers`].
    pub url: ServiceUrl,
    /// Every broker of a cluster, `url` first (`RABBITMQ_URLS`); empty means `url` alone.
    /// [`connect_any`] starts at the last one that worked and moves to the next on failure.
    pub brokers: Vec<ServiceUrl>,
    /// Index into `brokers` of the one to try first (shared by the clones of these settings).
    pub current_broker: std::sync::Arc<std::sync::atomic::AtomicUsize>,
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
    /// How this process names itself: consumer tag, dead-letter header, connection name.
    pub hostname: String,
    /// Name shown in the RabbitMQ management UI.
    pub connection_name: String,
}

impl Default for AmqpSettings {
    /// The seed's names, `amqp://guest:guest@localhost:5672/%2f`, this machine's host name.
    fn default() -> Self {
        let url =
            ServiceUrl::parse("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2f", &["amqp"]).expect("static URL");
        Self::new(url, &crate::log_lines::hostname())
    }
}

impl AmqpSettings {
    /// The seed's names with `url`, for a process called `hostname`.
    pub fn new(url: ServiceUrl, hostname: &str) -> Self {
        Self {
            url,
            brokers: Vec::new(),
            current_broker: std::sync::Arc::default(),
            exchange: "toWorker".into(),
            queue: "toWorker".into(),
            routing_key: "toWorker".into(),
            dead_letter_queue: "toWorker.dead".into(),
            queue_type: QueueType::Classic,
            prefetch: 2,
            delivery_limit: 20,
            logs_exchange: "logs".into(),
            logs_durable: false,
            hostname: hostname.to_owned(),
            connection_name: format!("facerec@{hostname}"),
        }
    }
}

/// Header carrying how many times a message was tried (classic queues).
pub const ATTEMPT_HEADER: &str = "x-facerec-attempt";
/// Header with the reason a message was dead-lettered.
pub const REASON_HEADER: &str = "x-facerec-reason";

/// What can go wrong talking to RabbitMQ; the lapin error is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// Connecting failed (unreachable, refused, bad credentials, TLS).
    #[error("cannot connect to RabbitMQ at {url}: {source}")]
    Connect {
        /// Redacted URL.
        url: String,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// No answer while connecting.
    #[error("no answer from RabbitMQ at {url} within {timeout:?}")]
    Timeout {
        /// Redacted URL.
        url: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// A channel operation (declare, publish, consume, ack) failed.
    #[error("RabbitMQ {what} failed: {source}")]
    Channel {
        /// The operation.
        what: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// A mandatory message reached no queue.
    #[error("no queue is bound to exchange {exchange:?} with key {routing_key:?} ({reply})")]
    Unroutable {
        /// Exchange.
        exchange: String,
        /// Routing key.
        routing_key: String,
        /// The broker's reply text.
        reply: String,
    },
    /// The broker nacked a publish.
    #[error("the broker refused the message (nack)")]
    Nacked,
    /// Confirms were not enabled on the channel.
    #[error("publisher confirms are not enabled on this channel")]
    NoConfirms,
}

impl AmqpError {
    /// Wraps a channel-level lapin error.
    pub fn channel(what: &'static str) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Self::Channel { what, source }
    }
}

/// The largest frame a connection asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frames {
    /// The broker's (RabbitMQ: 128 KiB): the consumer and `capture`, which receive
    /// messages of up to 64 MiB.
    Broker,
    /// [`PUBLISHER_FRAME_MAX`]: connections that publish (the API, `submit`, log sinks) or
    /// read only log lines (`facerec logs`).
    Small,
}

/// The frame size of [`Frames::Small`]. lapin keeps a buffer of 32 frames each way per
/// connection, so at RabbitMQ's default 128 KiB frames every connection holds 8 MiB; at
/// 16 KiB, 1 MiB (`facerec api` has two connections: 14 MiB less resident memory). A
/// 83 KB image message then goes out as 6 frames instead of 1 (the API benchmark in
/// docs/PERFORMANCE.md measures it). A `frame_max` in the URL wins.
pub const PUBLISHER_FRAME_MAX: u32 = 16 << 10;

/// Opens a connection, giving up after `timeout`.
///
/// # Errors
/// The broker is unreachable, refuses the credentials, or does not answer in time.
pub async fn connect(url: &ServiceUrl, name: &str, frames: Frames, timeout: Duration) -> Result<Connection, AmqpError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let url = match frames {
        Frames::Broker => url.clone(),
        Frames::Small => url.with_query_default("frame_max", &PUBLISHER_FRAME_MAX.to_string()),
    };
    match tokio::time::timeout(timeout, Connection::connect(url.expose(), properties)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(source)) => Err(AmqpError::Connect { url: url.redacted(), source }),
        Err(_) => Err(AmqpError::Timeout { url: url.redacted(), timeout }),
    }
}

/// Opens a connection to one of `settings`' brokers: the one that worked last, else each
/// next in turn (logging "trying the next broker"), giving up on each after `timeout`. The
/// caller waits with its [`Backoff`](crate::backoff::Backoff) when all failed.
///
/// # Errors
/// The error of the last broker tried when none could be reached.
pub async fn connect_any(
    settings: &AmqpSettings,
    name: &str,
    frames: Frames,
    timeout: Duration,
) -> Result<Connection, AmqpError> {
    use std::sync::atomic::Ordering;
    if settings.brokers.len() < 2 {
        return connect(&settings.url, name, frames, timeout).await;
    }
    let n = settings.brokers.len();
    let start = settings.current_broker.load(Ordering::Relaxed) % n;
    let mut last = None;
    for k in 0..n {
        let i = (start + k) % n;
        match connect(&settings.brokers[i], name, frames, timeout).await {
            Ok(c) => {
                settings.current_broker.store(i, Ordering::Relaxed);
                tracing::info!(broker = %settings.brokers[i].host_port(), "connected to RabbitMQ");
                return Ok(c);
            }
            Err(e) => {
                let next = &settings.brokers[(i + 1) % n];
                tracing::warn!(error = %e, next = %next.host_port(), "RabbitMQ broker unreachable, trying the next broker");
                settings.current_broker.store((i + 1) % n, Ordering::Relaxed);
                last = Some(e);
            }
        }
    }
    Err(last.expect("at least two brokers tried"))
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
