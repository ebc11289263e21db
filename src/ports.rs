//! The four ports: what the orchestrator needs from the world, and nothing more.
//!
//! Each port has a production adapter in `src/adapters/`, and test doubles in the
//! `facerec-fakes` crate. Every error type says whether a failure is *transient* (the
//! message is requeued and tried again later) or *permanent* (the message is dead-lettered
//! with the error as its reason); the orchestrator decides from that alone.

use crate::face::{BoundingBox, EncodedImage, Encoding};
use crate::hash::ImageHash;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------------------
// MessageSource

/// Opaque handle of one delivery, unique within its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId(pub u64);

/// One message as taken from a source, not yet settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Pass back to [`MessageSource::settle`].
    pub id: DeliveryId,
    /// The message body, unparsed.
    pub body: Vec<u8>,
    /// Headers whose values are text (`name`, `hash` for raw-image messages).
    pub headers: BTreeMap<String, String>,
    /// 1 on first delivery; raised each time the message is requeued by a worker, or
    /// comes back after a worker died holding it.
    pub attempt: u32,
}

/// Header a source may set on [`Delivery::headers`]: how many earlier attempts ended with
/// no settlement at all (the worker was killed, aborted or lost its connection).
pub const KILLS_HEADER: &str = "x-facerec-kills";

/// How a delivery ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Processed; its result is durable. Remove it from the queue.
    Ack,
    /// Failed for a reason that may pass (a server down). Deliver it again later, with
    /// `attempt` raised by one.
    Requeue {
        /// Why, for logs.
        reason: String,
    },
    /// Not tried: a server the pipeline needs is down, the message is not at fault. Deliver
    /// it again later with `attempt` unchanged.
    Release {
        /// Why, for logs.
        reason: String,
    },
    /// Can never succeed. Move it, with `reason`, to the dead-letter queue.
    DeadLetter {
        /// Why, stored with the message.
        reason: String,
    },
}

/// A source failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The connection is down; the source reconnects by itself and unsettled deliveries
    /// return to the queue.
    #[error("message source unavailable: {0}")]
    Unavailable(String),
    /// The source cannot go on (bad configuration, a file that cannot be read).
    #[error("message source failed: {0}")]
    Fatal(String),
}

/// Where deliveries come from: a RabbitMQ queue, a folder, captured message files.
///
/// Contract: every delivery returned by `next` MUST be settled exactly once, or the source
/// MUST give it back (redeliver it) when the process dies or the connection drops. A
/// delivery MUST NOT be removed from its queue before `settle(.., Ack)` returns `Ok`.
#[async_trait]
pub trait MessageSource: Send + Sync {
    /// The next delivery, waiting for one if needed. `Ok(None)` means the source is
    /// exhausted (a folder or replay finished); a broker source only ends when closed.
    ///
    /// # Errors
    /// [`SourceError::Unavailable`] while reconnecting; [`SourceError::Fatal`] when the
    /// source cannot continue.
    async fn next(&self) -> Result<Option<Delivery>, SourceError>;

    /// Acks, requeues or dead-letters a delivery. For `DeadLetter`, the message MUST be
    /// stored in the dead-letter queue before it is removed from its own queue.
    ///
    /// # Errors
    /// [`SourceError::Unavailable`] if the connection dropped: the broker will redeliver.
    async fn settle(&self, id: DeliveryId, settlement: Settlement) -> Result<(), SourceError>;
}

// ---------------------------------------------------------------------------------------
// FaceEncoder

/// An encoder failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Not a decodable image (permanent).
    #[error("not a decodable image: {0}")]
    NotAnImage(String),
    /// Over a configured limit: bytes, pixels or faces (permanent).
    #[error("image over limit: {0}")]
    OverLimit(String),
    /// This image has no recorded encoding (recorded encoder only; permanent).
    #[error("no recorded encoding for image {0}")]
    NotRecorded(ImageHash),
    /// dlib failed on this image (permanent: the same image fails again).
    #[error("face encoding failed: {0}")]
    Failed(String),
    /// The encoder cannot work right now (its pool is shutting down; transient).
    #[error("encoder unavailable: {0}")]
    Unavailable(String),
}

impl EncodeError {
    /// Whether trying the same image again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, EncodeError::Unavailable(_))
    }
}

/// Finds faces. Implementations run CPU-heavy work on their own threads: `encode` MUST
/// NOT block the async executor.
#[async_trait]
pub trait FaceEncoder: Send + Sync {
    /// Decodes `image` (JPEG, PNG, GIF, BMP, WebP) and returns every face in it. `hash` is
    /// the image's key: encoders that work from pixels ignore it, the recorded encoder
    /// looks encodings up by it.
    ///
    /// # Errors
    /// See [`EncodeError`]; only `Unavailable` is transient.
    async fn encode(&self, hash: &ImageHash, image: &[u8]) -> Result<EncodedImage, EncodeError>;

    /// The settings that determine the encodings (models, detector, upsample, jitters), as
    /// one string. Stored with each image so a later re-index can find stale entries.
    fn fingerprint(&self) -> String;

    /// Why the encoder cannot make progress now (every thread stuck past its deadline),
    /// or `None`. For readiness; the default never stalls.
    fn stalled(&self) -> Option<String> {
        None
    }

    /// Takes `bytes` of the encoder's memory budget, held until the reservation is
    /// dropped (waiting while the budget is spent). The orchestrator holds one while it
    /// parses a message (its body and the image decoded out of it), so a big message is
    /// not unpacked while images being encoded use the budget. `None`: this encoder has no
    /// budget (the default).
    async fn reserve_memory(&self, bytes: usize) -> Option<MemoryReservation> {
        let _ = bytes;
        None
    }
}

/// A share of an encoder's memory budget ([`FaceEncoder::reserve_memory`]), given back
/// when dropped.
pub struct MemoryReservation(#[allow(dead_code)] Box<dyn Send + Sync>);

impl MemoryReservation {
    /// Wraps whatever gives the share back when dropped (a semaphore permit).
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self(Box::new(guard))
    }
}

impl std::fmt::Debug for MemoryReservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryReservation")
    }
}

// ---------------------------------------------------------------------------------------
// FaceIndex

/// An image to add, with the faces found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImage {
    /// Its key.
    pub hash: ImageHash,
    /// The name it arrived with.
    pub name: String,
    /// One encoding per face; may be empty.
    pub faces: Vec<Encoding>,
    /// [`FaceEncoder::fingerprint`] of the encoder that found them.
    pub fingerprint: String,
    /// Width of the image (EXIF orientation applied), in pixels.
    pub width: u32,
    /// Height of the image, in pixels.
    pub height: u32,
    /// Where each face is, in the order of `faces` (same length).
    pub boxes: Vec<BoundingBox>,
    /// A JPEG thumbnail (`crate::thumbnail`), when the encoder made one.
    pub thumbnail: Option<Vec<u8>>,
}

impl NewImage {
    /// An image without layout or thumbnail (0 x 0, no boxes): what tools and tests store
    /// when only the faces matter.
    pub fn bare(
        hash: ImageHash,
        name: impl Into<String>,
        faces: Vec<Encoding>,
        fingerprint: impl Into<String>,
    ) -> Self {
        Self {
            hash,
            name: name.into(),
            faces,
            fingerprint: fingerprint.into(),
            width: 0,
            height: 0,
            boxes: Vec::new(),
            thumbnail: None,
        }
    }

    /// The layout to store with the faces, or `None` when the encoder gave no size (or
    /// the boxes do not pair up with the faces).
    pub fn layout(&self) -> Option<ImageLayout> {
        if self.width == 0 || self.height == 0 || self.boxes.len() != self.faces.len() {
            return None;
        }
        let faces = self
            .boxes
            .iter()
            .zip(&self.faces)
            .map(|(bbox, encoding)| FaceBox { bbox: *bbox, id: encoding.id() })
            .collect();
        Some(ImageLayout { width: self.width, height: self.height, faces })
    }
}

/// Where the faces of an image are (`facerec:layout:<hash>`, docs/PROTOCOL.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayout {
    /// Width of the image (EXIF orientation applied), in pixels.
    pub width: u32,
    /// Height, in pixels.
    pub height: u32,
    /// One box per face.
    pub faces: Vec<FaceBox>,
}

/// One face's box, tied to its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaceBox {
    /// In original-image pixels, face_recognition's (top, right, bottom, left).
    #[serde(flatten)]
    pub bbox: BoundingBox,
    /// [`Encoding::id`] of the face's encoding.
    pub id: String,
}

/// Another image that shares a face with the one asked about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMatch {
    /// The other image.
    pub hash: ImageHash,
    /// Smallest distance between a face of one image and a face of the other.
    pub distance: f64,
}

/// Everything the index holds about one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Its key.
    pub hash: ImageHash,
    /// Every name it arrived with (db 2).
    pub names: BTreeSet<String>,
    /// Its face encodings (db 3).
    pub faces: Vec<Encoding>,
    /// Images sharing a face with it, nearest first (db 4, with distances).
    pub matches: Vec<ImageMatch>,
    /// Encoder settings it was scanned with, when known.
    pub fingerprint: Option<String>,
    /// Its size and face boxes, when stored (absent for images stored by older workers).
    #[serde(default)]
    pub layout: Option<ImageLayout>,
    /// Whether [`FaceIndex::thumbnail`] has a thumbnail for it (checked without reading it).
    #[serde(default)]
    pub thumbnail: bool,
}

/// Why the workers gave up on an image (it was dead-lettered), as recorded by
/// [`FaceIndex::record_failure`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFailure {
    /// The dead-letter reason.
    pub reason: String,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
}

/// One page of stored images, newest first ([`FaceIndex::recent`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePage {
    /// Hashes of complete images, newest first, no repeats within the page.
    pub hashes: Vec<ImageHash>,
    /// Opaque position of the next (older) page; `None` on the last page.
    pub next: Option<String>,
}

/// One image an erase removed, as it was just before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedImage {
    /// Its key.
    pub hash: ImageHash,
    /// The names that pointed to it and were removed.
    pub names: BTreeSet<String>,
    /// How many face encodings were removed.
    pub faces: usize,
    /// How many other images it was linked with (db 4) before.
    pub matches: usize,
}

/// What [`FaceIndex::forget`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    /// Images that were present and are now gone.
    pub erased: Vec<ErasedImage>,
    /// Hashes asked for that the index did not hold (not an error: erasing is idempotent).
    pub unknown: Vec<ImageHash>,
}

/// An index failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The store cannot be reached or timed out (transient).
    #[error("index unavailable: {0}")]
    Unavailable(String),
    /// The store holds data this image cannot be written over, e.g. a key of the wrong
    /// type written by another program (permanent).
    #[error("index rejected the write: {0}")]
    Rejected(String),
}

impl IndexError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, IndexError::Unavailable(_))
    }
}

/// The four-database model: name -> hash (db 1), hash -> {names} (db 2),
/// hash -> {encodings} (db 3), hash -> {matching hashes} (db 4, symmetric).
///
/// Contract: a method returning `Ok` has made its writes durable as far as the store
/// goes. `add_image` is one logical step: it stores the faces *before* comparing them
/// with the rest of the index (so two workers racing on two images of one person still
/// link them), records matches in both directions, never matches an image with itself,
/// and writes the name last: no reader sees the name before faces and matches are
/// complete. Every method is idempotent: repeating a call gives the same state.
#[async_trait]
pub trait FaceIndex: Send + Sync {
    /// Whether the image was completely added before (its names exist).
    ///
    /// # Errors
    /// See [`IndexError`].
    async fn is_known(&self, hash: &ImageHash) -> Result<bool, IndexError>;

    /// Adds a name to a known image (db 1 and db 2).
    ///
    /// # Errors
    /// See [`IndexError`].
    async fn add_name(&self, hash: &ImageHash, name: &str) -> Result<(), IndexError>;

    /// Stores an image with its faces and returns the other images it matches
    /// (distance <= `tolerance`), nearest first. The layout ([`NewImage::layout`]) and the
    /// thumbnail MUST be written in the same atomic step as the faces, so no reader sees
    /// faces without them; [`FaceIndex::forget`] removes them with the rest.
    ///
    /// # Errors
    /// See [`IndexError`].
    async fn add_image(&self, image: &NewImage, tolerance: f64) -> Result<Vec<ImageMatch>, IndexError>;

    /// Everything known about one image, or `None`.
    ///
    /// # Errors
    /// See [`IndexError`].
    async fn image(&self, hash: &ImageHash) -> Result<Option<ImageRecord>, IndexError>;

    /// The image a name points to (db 1), or `None`.
    ///
    /// # Errors
    /// See [`IndexError`].
    async fn hash_of(&self, name: &str) -> Result<Option<ImageHash>, IndexError>;

    /// Records that the image was dead-lettered and why (the latest failure wins), so
    /// readers such as `GET /api/v1/images/{hash}` can say `failed` and give the reason.
    /// Outside the four databases; never changes what they hold.
    ///
    /// # Errors
    /// See [`IndexError`]; callers log it and go on (the message is dead-lettered anyway).
    async fn record_failure(&self, hash: &ImageHash, reason: &str) -> Result<(), IndexError>;

    /// The last recorded failure of the image, or `None`.
    ///
    /// # Errors
    /// See [`IndexError`].
    async fn failure(&self, hash: &ImageHash) -> Result<Option<ImageFailure>, IndexError>;

    /// Complete images, newest first: at most `limit`, older than `cursor` (a
    /// [`ImagePage::next`] from an earlier call; `None`: from the newest).
    ///
    /// # Errors
    /// [`IndexError::Rejected`] for a cursor this index never gave out; see [`IndexError`].
    async fn recent(&self, limit: usize, cursor: Option<String>) -> Result<ImagePage, IndexError>;

    /// Erases images everywhere the index keeps anything about them: names (only those
    /// still pointing to the image), faces, matches in both directions, distances and
    /// records. Afterwards no `add_image` of another image matches them, in this process
    /// or any other sharing the store, and an `add_image` of an erased image that was in
    /// flight MUST NOT bring it back half-way. Idempotent: an unknown hash is reported in
    /// [`Forgotten::unknown`], not an error.
    ///
    /// # Errors
    /// See [`IndexError`]; on error each image is either fully erased or untouched.
    async fn forget(&self, hashes: &[ImageHash]) -> Result<Forgotten, IndexError>;

    /// The JPEG thumbnail stored with the image, or `None` (thumbnails off, an image stored
    /// by an older worker, or an unknown image).
    ///
    /// # Errors
    /// See [`IndexError`].
    async fn thumbnail(&self, hash: &ImageHash) -> Result<Option<Vec<u8>>, IndexError>;

    /// Every stored image with a face within `tolerance` of any of `faces`, nearest first
    /// (to find every image of one person before erasing them).
    ///
    /// # Errors
    /// See [`IndexError`].
    async fn find_faces(&self, faces: &[Encoding], tolerance: f64) -> Result<Vec<ImageMatch>, IndexError>;

    /// Every name (db 2) of every image sharing a face with `hash` (db 4): the course's
    /// `GET /match/{hash}`. Empty for an unknown image. The default reads each record;
    /// a remote store answers it in one round trip.
    ///
    /// # Errors
    /// See [`IndexError`].
    async fn match_names(&self, hash: &ImageHash) -> Result<BTreeSet<String>, IndexError> {
        let Some(record) = self.image(hash).await? else { return Ok(BTreeSet::new()) };
        let mut names = BTreeSet::new();
        for m in &record.matches {
            if let Some(other) = self.image(&m.hash).await? {
                names.extend(other.names);
            }
        }
        Ok(names)
    }

    /// A cheap round trip that says whether the store answers now. After a transient
    /// failure it tells an outage (pause, count no attempt) from a failure of the message.
    /// The default suits an in-process index, which is always reachable.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] while the store does not answer.
    async fn ping(&self) -> Result<(), IndexError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// LogSink

/// Where progress lines go: the `logs` topic exchange in production, stderr for `scan`.
///
/// Contract: `publish` MUST return promptly and MUST NOT fail or block image processing
/// when the destination is slow or down; an implementation may drop lines then (and
/// count them).
#[async_trait]
pub trait LogSink: Send + Sync {
    /// Publishes one line under a routing key such as `host1.worker.info`.
    async fn publish(&self, routing_key: &str, line: &str);
}

// ---------------------------------------------------------------------------------------
// Shared handles: an `Arc` of a port is the port, so the CLI can pick an adapter at run
// time (`Arc<dyn FaceEncoder>`) and keep a handle to the index it gave the orchestrator.

#[async_trait]
impl<T: MessageSource + ?Sized> MessageSource for std::sync::Arc<T> {
    async fn next(&self) -> Result<Option<Delivery>, SourceError> {
        (**self).next().await
    }
    async fn settle(&self, id: DeliveryId, settlement: Settlement) -> Result<(), SourceError> {
        (**self).settle(id, settlement).await
    }
}

#[async_trait]
impl<T: FaceEncoder + ?Sized> FaceEncoder for std::sync::Arc<T> {
    async fn encode(&self, hash: &ImageHash, image: &[u8]) -> Result<EncodedImage, EncodeError> {
        (**self).encode(hash, image).await
    }
    fn fingerprint(&self) -> String {
        (**self).fingerprint()
    }
    fn stalled(&self) -> Option<String> {
        (**self).stalled()
    }
    async fn reserve_memory(&self, bytes: usize) -> Option<MemoryReservation> {
        (**self).reserve_memory(bytes).await
    }
}

#[async_trait]
impl<T: FaceIndex + ?Sized> FaceIndex for std::sync::Arc<T> {
    async fn is_known(&self, hash: &ImageHash) -> Result<bool, IndexError> {
        (**self).is_known(hash).await
    }
    async fn add_name(&self, hash: &ImageHash, name: &str) -> Result<(), IndexError> {
        (**self).add_name(hash, name).await
    }
    async fn add_image(&self, image: &NewImage, tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        (**self).add_image(image, tolerance).await
    }
    async fn image(&self, hash: &ImageHash) -> Result<Option<ImageRecord>, IndexError> {
        (**self).image(hash).await
    }
    async fn hash_of(&self, name: &str) -> Result<Option<ImageHash>, IndexError> {
        (**self).hash_of(name).await
    }
    async fn record_failure(&self, hash: &ImageHash, reason: &str) -> Result<(), IndexError> {
        (**self).record_failure(hash, reason).await
    }
    async fn failure(&self, hash: &ImageHash) -> Result<Option<ImageFailure>, IndexError> {
        (**self).failure(hash).await
    }
    async fn recent(&self, limit: usize, cursor: Option<String>) -> Result<ImagePage, IndexError> {
        (**self).recent(limit, cursor).await
    }
    async fn forget(&self, hashes: &[ImageHash]) -> Result<Forgotten, IndexError> {
        (**self).forget(hashes).await
    }
    async fn thumbnail(&self, hash: &ImageHash) -> Result<Option<Vec<u8>>, IndexError> {
        (**self).thumbnail(hash).await
    }
    async fn find_faces(&self, faces: &[Encoding], tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        (**self).find_faces(faces, tolerance).await
    }
    async fn match_names(&self, hash: &ImageHash) -> Result<BTreeSet<String>, IndexError> {
        (**self).match_names(hash).await
    }

    async fn ping(&self) -> Result<(), IndexError> {
        (**self).ping().await
    }
}

#[async_trait]
impl<T: LogSink + ?Sized> LogSink for std::sync::Arc<T> {
    async fn publish(&self, routing_key: &str, line: &str) {
        (**self).publish(routing_key, line).await
    }
}

// ---------------------------------------------------------------------------------------
// ImageQueue (the REST front-end's way in)

/// Why a submission was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The broker is down, did not confirm in time, or the connection failed while
    /// publishing (transient: the client may retry later; nothing was accepted).
    #[error("work queue unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message for good (nack, no queue bound).
    #[error("work queue refused the image: {0}")]
    Rejected(String),
}

/// Where submitted images go: the work exchange in production, a list in tests.
///
/// Contract: `submit` MUST return `Ok` only once the message is durable on the broker's
/// side (a persistent message, confirmed). Any doubt is an error: a caller told `Ok` may
/// drop its copy of the image. MUST fail promptly (seconds) when the broker is down and
/// MUST recover by itself when it returns.
#[async_trait]
pub trait ImageQueue: Send + Sync {
    /// Queues `image` for the workers under `hash` with `name`.
    ///
    /// # Errors
    /// See [`QueueError`].
    async fn submit(&self, hash: &ImageHash, name: &str, image: &[u8]) -> Result<(), QueueError>;

    /// Messages waiting in the work queue now (for load shedding). MUST be cheap enough
    /// to call about once a second, and MUST fail promptly when the broker is down.
    ///
    /// # Errors
    /// See [`QueueError`].
    async fn depth(&self) -> Result<u64, QueueError>;
}

#[async_trait]
impl<T: ImageQueue + ?Sized> ImageQueue for std::sync::Arc<T> {
    async fn submit(&self, hash: &ImageHash, name: &str, image: &[u8]) -> Result<(), QueueError> {
        (**self).submit(hash, name, image).await
    }
    async fn depth(&self) -> Result<u64, QueueError> {
        (**self).depth().await
    }
}
