//! The composition root: the only place where adapters are built from settings and
//! wired to the ports. `src/cli/` parses arguments, calls these functions and prints;
//! it never names a driver (lapin, fred, dlib). Tests and benchmarks assemble fakes
//! themselves, through the same ports.
//!
//! | function | builds |
//! |---|---|
//! | [`encoder`] | dlib ([`DlibEncoder`]) or recorded encodings ([`RecordedEncoder`]) |
//! | [`embedded_index`] / [`redis_index`] | the [`FaceIndex`](crate::ports::FaceIndex) on disk / in Redis |
//! | [`publisher`], [`log_tail`], [`queue_reader`] | RabbitMQ clients of `submit`, `logs`, `capture` |
//! | [`log_sink`] | the `logs` exchange as a [`LogSink`](crate::ports::LogSink) for a one-shot command (`forget`'s audit line) |
//! | [`api::run`] | the REST front-end: Redis reads, AMQP submissions with confirms, fetcher, listener |
//! | [`worker::run`] | the worker: Redis index, AMQP source and log sink, health server, registry heartbeat |
//! | [`reindex::run`] | `facerec reindex`: worker registry check, Redis reads, plan, batched writes |
//! | [`serve::Serve`] | API, page and worker in one process: in-process queue, embedded index, stderr logs |
//!
//! Errors: a [`ConfigError`] (or a missing model / recording file) is a mistake in the
//! settings: [`AppError::exit_code`] is 2 and nothing is retried. Only an unreachable
//! server is waited for, with [`Backoff`](crate::backoff::Backoff).

pub mod api;
pub mod reindex;
pub mod serve;
pub mod worker;

use crate::adapters::amqp::client::{LogTail, QueueReader};
use crate::adapters::amqp::logs::AmqpLogs;
use crate::adapters::amqp::resend::ResendingPublisher;
use crate::adapters::amqp::{AmqpError, AmqpSettings};
use crate::adapters::dlib::{DlibEncoder, EncoderSettings, StartError};
use crate::adapters::embedded_index::{EmbeddedIndex, JournalError};
use crate::adapters::recorded_encoder::{RecordedEncoder, RecordingError};
use crate::adapters::redis_index::{RedisIndex, RedisSettings};
use crate::config::ConfigError;
use crate::ports::{FaceEncoder, IndexError, SourceError};
use crate::thumbnail::ThumbnailSettings;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a command could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A setting is wrong: fix it, retrying will not help.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The encoder could not start for another reason than its settings.
    #[error("starting the encoder: {0}")]
    Encoder(#[source] StartError),
    /// The index refused or failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// RabbitMQ refused or failed.
    #[error(transparent)]
    Broker(#[from] AmqpError),
    /// The message source failed for good.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The embedded index file.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A local file or socket.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl AppError {
    /// The process exit status: 2 for configuration mistakes, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => 2,
            _ => 1,
        }
    }
}

impl From<StartError> for AppError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::MissingModel { .. } | StartError::NotBuilt => {
                AppError::Config(ConfigError::invalid("FACEREC_MODELS", e.to_string()))
            }
            StartError::Failed(_) => AppError::Encoder(e),
        }
    }
}

impl From<RecordingError> for AppError {
    fn from(e: RecordingError) -> Self {
        AppError::Config(ConfigError::invalid("FACEREC_ENCODINGS", e.to_string()))
    }
}

/// Which encoder to run.
#[derive(Debug, Clone)]
pub enum EncoderChoice {
    /// dlib with these settings.
    Dlib(EncoderSettings),
    /// Encodings recorded by `facerec record`, each image taking `delay` (drills, benchmarks).
    Recorded {
        /// The recording file.
        file: PathBuf,
        /// Pretend each image takes this long.
        delay: Duration,
        /// Thumbnails of the submitted bytes, when they decode.
        thumbnails: ThumbnailSettings,
    },
}

/// Starts the chosen encoder.
///
/// # Errors
/// A missing model or recording file is a [`AppError::Config`].
pub fn encoder(choice: &EncoderChoice) -> Result<Arc<dyn FaceEncoder>, AppError> {
    Ok(match choice {
        EncoderChoice::Dlib(settings) => Arc::new(DlibEncoder::start(settings.clone())?),
        EncoderChoice::Recorded { file, delay, thumbnails } => {
            Arc::new(RecordedEncoder::load(file)?.with_delay(*delay).with_thumbnails(*thumbnails))
        }
    })
}

/// The embedded index: in memory, or kept in `path` (created if missing).
///
/// # Errors
/// The file cannot be read or is not an index.
pub fn embedded_index(path: Option<&Path>) -> Result<EmbeddedIndex, AppError> {
    match path {
        None => Ok(EmbeddedIndex::in_memory()),
        Some(path) => Ok(EmbeddedIndex::open(path)?),
    }
}

/// Connects to Redis once (no waiting: for tools; the worker waits in [`worker::run`]).
///
/// # Errors
/// Redis is unreachable or refuses the connection.
pub async fn redis_index(settings: RedisSettings) -> Result<RedisIndex, AppError> {
    Ok(RedisIndex::connect(settings).await?)
}

/// A publisher of images to the work exchange (`facerec submit`) that re-sends what the
/// broker did not confirm, across reconnections, for at most `give_up_after` per image.
///
/// # Errors
/// No broker answered within `give_up_after`, or one refused a declaration.
pub async fn publisher(settings: AmqpSettings, give_up_after: Duration) -> Result<ResendingPublisher, AppError> {
    Ok(ResendingPublisher::connect(settings, "facerec submit", give_up_after).await?)
}

/// A live feed of the logs exchange (`facerec logs`).
///
/// # Errors
/// RabbitMQ is unreachable or refuses a declaration.
pub async fn log_tail(settings: &AmqpSettings, pattern: &str) -> Result<LogTail, AppError> {
    Ok(LogTail::open(settings, pattern).await?)
}

/// The `logs` exchange as a [`LogSink`](crate::ports::LogSink), connecting in the
/// background from now on (`facerec forget`'s audit line): publishing never waits for the
/// broker; [`AmqpLogs::close`] sends what is buffered within a deadline and
/// [`AmqpLogs::sent`] then says whether it went out.
pub fn log_sink(settings: AmqpSettings) -> AmqpLogs {
    AmqpLogs::start(settings)
}

/// A reader that copies messages out of `queue` (`facerec capture`).
///
/// # Errors
/// RabbitMQ is unreachable.
pub async fn queue_reader(settings: &AmqpSettings, queue: &str) -> Result<QueueReader, AppError> {
    Ok(QueueReader::open(settings, queue).await?)
}

/// The name this process uses for itself: `--hostname` / `FACEREC_HOSTNAME`, else the
/// machine's host name.
pub fn hostname(configured: Option<&str>) -> String {
    configured.map_or_else(crate::log_lines::hostname, str::to_owned)
}
