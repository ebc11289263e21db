//! The pipeline, written once: one delivery in, one [`Outcome`] out.
//!
//! parse -> known hash? add the name : (encode -> add faces, compare, write names last)
//! -> log `<host>.worker.info`. The orchestrator never acks by itself: [`Outcome`] says
//! how the delivery must be settled, and the runner (`runner.rs`) settles it.

use crate::face::StageTimes;
use crate::hash::ImageHash;
use crate::log_lines::{RoutingKeys, escape};
use crate::message::{MessageLimits, ScanRequest};
use crate::ports::{Delivery, FaceEncoder, FaceIndex, ImageMatch, KILLS_HEADER, LogSink, NewImage, Settlement};
use std::fmt::Write as _;
use std::time::Duration;
use tracing::instrument;

/// How the orchestrator behaves; the same in production, `scan`, replay and tests.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Faces at Euclidean distance <= tolerance are the same person.
    pub tolerance: f64,
    /// A transient failure on this attempt or later dead-letters instead of requeueing.
    pub max_attempts: u32,
    /// Limits checked while parsing a message.
    pub limits: MessageLimits,
    /// Routing keys of progress lines.
    pub keys: RoutingKeys,
    /// Longest time one image may spend in the encoder; past it the image is
    /// dead-lettered (`FACEREC_MAX_ENCODE_SECONDS`).
    pub max_encode: Duration,
}

impl Settings {
    /// Defaults for `host`: tolerance 0.6 (face_recognition's), 5 attempts, 60 s per encode.
    pub fn for_host(host: &str) -> Self {
        Self {
            tolerance: 0.6,
            max_attempts: 5,
            limits: MessageLimits::default(),
            keys: RoutingKeys::for_host(host),
            max_encode: Duration::from_secs(60),
        }
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A new image: faces stored, matches recorded.
    Stored {
        /// Its key.
        hash: ImageHash,
        /// The name it arrived with.
        name: String,
        /// Number of faces found.
        faces: usize,
        /// Other images sharing a face with it.
        matches: Vec<ImageMatch>,
        /// Encoder stage timings.
        times: StageTimes,
    },
    /// A known image: only the name was added.
    NameAdded {
        /// Its key.
        hash: ImageHash,
        /// The name added.
        name: String,
    },
    /// A transient failure: try again later.
    Retry {
        /// The image, when the message could be parsed.
        hash: Option<ImageHash>,
        /// Why.
        reason: String,
        /// A server the pipeline needs is down (it failed a health probe): the message is
        /// not at fault, so no attempt is counted, and the runner stops taking deliveries
        /// until the server answers again.
        outage: bool,
    },
    /// Can never succeed: dead-letter.
    Rejected {
        /// The image, when the message could be parsed.
        hash: Option<ImageHash>,
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// How the delivery must be settled.
    pub fn settlement(&self) -> Settlement {
        match self {
            Outcome::Stored { .. } | Outcome::NameAdded { .. } => Settlement::Ack,
            Outcome::Retry { reason, outage: true, .. } => Settlement::Release { reason: reason.clone() },
            Outcome::Retry { reason, outage: false, .. } => Settlement::Requeue { reason: reason.clone() },
            Outcome::Rejected { reason, .. } => Settlement::DeadLetter { reason: reason.clone() },
        }
    }

    /// A short label for metrics: `stored`, `name_added`, `retry`, `dead_letter`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Stored { .. } => "stored",
            Outcome::NameAdded { .. } => "name_added",
            Outcome::Retry { .. } => "retry",
            Outcome::Rejected { .. } => "dead_letter",
        }
    }
}

/// A failure inside one step, before it is turned into an [`Outcome`].
enum StepError {
    Transient(String),
    /// A transient index failure: an outage if the index then fails its health probe.
    IndexTransient(String),
    Permanent(String),
}

/// The pipeline over its three processing ports (the source is the runner's).
pub struct Orchestrator<E, I, L> {
    encoder: E,
    index: I,
    logs: L,
    settings: Settings,
}

impl<E: FaceEncoder, I: FaceIndex, L: LogSink> Orchestrator<E, I, L> {
    /// Wires the pipeline.
    pub fn new(encoder: E, index: I, logs: L, settings: Settings) -> Self {
        Self { encoder, index, logs, settings }
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The index (for callers that print results after a run).
    pub fn index(&self) -> &I {
        &self.index
    }

    /// Processes one delivery. Never panics on bad input; never settles.
    #[instrument(skip_all, fields(attempt = delivery.attempt, hash))]
    pub async fn process(&self, delivery: &Delivery) -> Outcome {
        if delivery.attempt > self.settings.max_attempts {
            // Past the limit only by deliveries that were never settled: a transient
            // failure on the last attempt dead-letters. So the message took a worker down
            // with it (killed, aborted, held past its grace period) on its last attempt at
            // least; processing it again would only crash this worker too. It is not even
            // parsed: parsing may be what kills.
            let kills = delivery
                .headers
                .get(KILLS_HEADER)
                .and_then(|k| k.parse::<u32>().ok())
                .unwrap_or(delivery.attempt - 1)
                .max(1);
            let reason = format!(
                "killed the worker {kills} times (delivery {} of at most {})",
                delivery.attempt, self.settings.max_attempts
            );
            return self.reject(None, reason).await;
        }
        // Parsing holds the body and the image decoded out of it (at most the body's size
        // again): that much of the encoder's memory budget, for as long as it takes.
        let parsing = self.encoder.reserve_memory(delivery.body.len().saturating_mul(2)).await;
        let parsed = ScanRequest::parse(&delivery.body, &delivery.headers, &self.settings.limits);
        drop(parsing);
        let request = match parsed {
            Ok(r) => r,
            Err(e) => return self.reject(None, format!("bad message: {e}")).await,
        };
        tracing::Span::current().record("hash", request.hash.as_str());
        self.debug(format!(
            "received {} \"{}\" ({} bytes, attempt {})",
            request.hash,
            escape(&request.name),
            request.image.len(),
            delivery.attempt
        ))
        .await;
        match self.store(&request).await {
            Ok(outcome) => outcome,
            Err(StepError::Permanent(reason)) => self.reject(Some(request.hash), reason).await,
            Err(StepError::IndexTransient(reason)) => match self.index.ping().await {
                // The store is down, not this message's fault: spend none of its attempts.
                Err(probe) => {
                    self.logs
                        .publish(
                            &self.settings.keys.warning,
                            &format!("{}: index down, put back uncounted: {reason} (probe: {probe})", request.hash),
                        )
                        .await;
                    Outcome::Retry { hash: Some(request.hash), reason, outage: true }
                }
                // The store answers: the failure belongs to this message (a script timing
                // out on it, say), and is bounded by max_attempts.
                Ok(()) => self.transient(delivery, request.hash, reason).await,
            },
            Err(StepError::Transient(reason)) => self.transient(delivery, request.hash, reason).await,
        }
    }

    /// A counted transient failure: retry, or dead-letter on the last attempt.
    async fn transient(&self, delivery: &Delivery, hash: ImageHash, reason: String) -> Outcome {
        if delivery.attempt >= self.settings.max_attempts {
            let reason = format!("gave up after {} attempts: {reason}", delivery.attempt);
            return self.reject(Some(hash), reason).await;
        }
        self.logs
            .publish(
                &self.settings.keys.warning,
                &format!(
                    "{hash}: attempt {} of {} failed, will retry: {reason}",
                    delivery.attempt, self.settings.max_attempts
                ),
            )
            .await;
        Outcome::Retry { hash: Some(hash), reason, outage: false }
    }

    async fn store(&self, request: &ScanRequest) -> Result<Outcome, StepError> {
        let (hash, name) = (&request.hash, request.name.as_str());
        if self.index.is_known(hash).await.map_err(index_error)? {
            self.debug(format!("{hash} is known; adding name \"{}\"", escape(name))).await;
            self.index.add_name(hash, name).await.map_err(index_error)?;
            self.info(format!("{hash} \"{}\": already known, name added", escape(name))).await;
            return Ok(Outcome::NameAdded { hash: hash.clone(), name: name.to_owned() });
        }
        self.debug(format!("{hash}: detecting faces")).await;
        let limit = self.settings.max_encode;
        let encoded = tokio::time::timeout(limit, self.encoder.encode(hash, &request.image))
            .await
            .map_err(|_| {
                // The encoder replaces a thread stuck on it; the image is not tried again.
                StepError::Permanent(format!(
                    "encoding took longer than FACEREC_MAX_ENCODE_SECONDS ({} s)",
                    limit.as_secs_f64()
                ))
            })?
            .map_err(|e| {
                if e.is_transient() { StepError::Transient(e.to_string()) } else { StepError::Permanent(e.to_string()) }
            })?;
        let mut t = encoded.times;
        self.debug(format!(
            "{hash}: {} faces in {}x{} (decode {} ms, detect {} ms, landmarks {} ms, encode {} ms)",
            encoded.faces.len(),
            encoded.width,
            encoded.height,
            t.decode.as_millis(),
            t.detect.as_millis(),
            t.landmarks.as_millis(),
            t.encode.as_millis()
        ))
        .await;
        let new = NewImage {
            hash: hash.clone(),
            name: name.to_owned(),
            faces: encoded.faces.iter().map(|f| f.encoding).collect(),
            fingerprint: self.encoder.fingerprint(),
            width: encoded.width,
            height: encoded.height,
            boxes: encoded.faces.iter().map(|f| f.bbox).collect(),
            thumbnail: encoded.thumbnail,
        };
        let faces = &new.faces;
        let started = std::time::Instant::now();
        let matches = self.index.add_image(&new, self.settings.tolerance).await.map_err(index_error)?;
        t.store = started.elapsed();
        let mut line = format!("{hash} \"{}\": {} faces, {} matching images", escape(name), faces.len(), matches.len());
        for m in &matches {
            let _ = write!(line, " {}", m.hash);
        }
        self.info(line).await;
        Ok(Outcome::Stored { hash: hash.clone(), name: name.to_owned(), faces: faces.len(), matches, times: t })
    }

    async fn reject(&self, hash: Option<ImageHash>, reason: String) -> Outcome {
        let subject = hash.as_ref().map_or_else(|| "message".to_owned(), |h| h.to_string());
        if let Some(h) = &hash
            && let Err(e) = self.index.record_failure(h, &reason).await
        {
            // The message is dead-lettered anyway; only `GET /api/v1/images/{hash}` loses
            // the reason.
            tracing::warn!(hash = %h, error = %e, "could not record the failure");
        }
        self.logs.publish(&self.settings.keys.error, &format!("{subject} dead-lettered: {}", escape(&reason))).await;
        Outcome::Rejected { hash, reason }
    }

    async fn debug(&self, line: String) {
        self.logs.publish(&self.settings.keys.debug, &line).await;
    }

    async fn info(&self, line: String) {
        self.logs.publish(&self.settings.keys.info, &line).await;
    }
}

fn index_error(e: crate::ports::IndexError) -> StepError {
    if e.is_transient() { StepError::IndexTransient(e.to_string()) } else { StepError::Permanent(e.to_string()) }
}

/// Delay before a failed delivery is requeued: 1 s, 2 s, 4 s, ... capped at `max`.
pub fn retry_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}
