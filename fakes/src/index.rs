//! [`FlakyIndex`]: wraps any index, records calls, and fails on command.

use crate::timeline::Timeline;
use async_trait::async_trait;
use facerec::face::Encoding;
use facerec::hash::ImageHash;
use facerec::ports::{FaceIndex, Forgotten, ImageFailure, ImageMatch, ImageRecord, IndexError, NewImage};
use std::sync::{Arc, Mutex};

/// One call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexCall {
    /// `is_known(hash)`.
    IsKnown(ImageHash),
    /// `add_name(hash, name)`.
    AddName(ImageHash, String),
    /// `add_image(hash, name, faces)`.
    AddImage(ImageHash, String, usize),
}

/// The index methods a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `is_known`.
    IsKnown,
    /// `add_name`.
    AddName,
    /// `add_image`.
    AddImage,
}

#[derive(Default)]
struct Faults {
    /// Errors returned by the next calls of a method, in order.
    queued: Vec<(Method, IndexError)>,
    /// Every call fails with this while set.
    down: Option<IndexError>,
}

/// A [`FaceIndex`] wrapper: records calls, writes `index.<method> ok|err <hash>` to an
/// optional timeline, and injects failures.
pub struct FlakyIndex<I> {
    inner: Arc<I>,
    calls: Arc<Mutex<Vec<IndexCall>>>,
    faults: Arc<Mutex<Faults>>,
    timeline: Option<Timeline>,
}

// Manual impl: a derive would require `I: Clone`, but the inner index is shared by `Arc`.
impl<I> Clone for FlakyIndex<I> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            calls: self.calls.clone(),
            faults: self.faults.clone(),
            timeline: self.timeline.clone(),
        }
    }
}

impl<I: FaceIndex> FlakyIndex<I> {
    /// Wraps `inner`.
    pub fn new(inner: I) -> Self {
        Self { inner: Arc::new(inner), calls: Arc::default(), faults: Arc::default(), timeline: None }
    }

    /// Also records `index.*` events on `timeline`.
    pub fn with_timeline(mut self, timeline: Timeline) -> Self {
        self.timeline = Some(timeline);
        self
    }

    /// The next calls of `method` fail with these errors, one per call, in order.
    pub fn fail_next(&self, method: Method, errors: impl IntoIterator<Item = IndexError>) {
        let mut f = self.faults.lock().expect("lock");
        f.queued.extend(errors.into_iter().map(|e| (method, e)));
    }

    /// Every call fails with `error` until [`FlakyIndex::recover`].
    pub fn go_down(&self, error: IndexError) {
        self.faults.lock().expect("lock").down = Some(error);
    }

    /// Ends [`FlakyIndex::go_down`].
    pub fn recover(&self) {
        self.faults.lock().expect("lock").down = None;
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<IndexCall> {
        self.calls.lock().expect("lock").clone()
    }

    /// The wrapped index.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    fn enter(&self, call: IndexCall) -> Result<(), IndexError> {
        let method = match &call {
            IndexCall::IsKnown(_) => Method::IsKnown,
            IndexCall::AddName(..) => Method::AddName,
            IndexCall::AddImage(..) => Method::AddImage,
        };
        self.calls.lock().expect("lock").push(call);
        let mut f = self.faults.lock().expect("lock");
        if let Some(e) = &f.down {
            return Err(e.clone());
        }
        match f.queued.iter().position(|(m, _)| *m == method) {
            Some(i) => Err(f.queued.remove(i).1),
            None => Ok(()),
        }
    }

    fn note<T>(&self, what: &str, hash: &ImageHash, result: &Result<T, IndexError>) {
        if let Some(t) = &self.timeline {
            let status = if result.is_ok() { "ok" } else { "err" };
            t.push(format!("index.{what} {status} {hash}"));
        }
    }
}

#[async_trait]
impl<I: FaceIndex> FaceIndex for FlakyIndex<I> {
    async fn is_known(&self, hash: &ImageHash) -> Result<bool, IndexError> {
        self.enter(IndexCall::IsKnown(hash.clone()))?;
        self.inner.is_known(hash).await
    }

    async fn add_name(&self, hash: &ImageHash, name: &str) -> Result<(), IndexError> {
        let result = match self.enter(IndexCall::AddName(hash.clone(), name.to_owned())) {
            Ok(()) => self.inner.add_name(hash, name).await,
            Err(e) => Err(e),
        };
        self.note("add_name", hash, &result);
        result
    }

    async fn add_image(&self, image: &NewImage, tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        let call = IndexCall::AddImage(image.hash.clone(), image.name.to_owned(), image.faces.len());
        let result = match self.enter(call) {
            Ok(()) => self.inner.add_image(image, tolerance).await,
            Err(e) => Err(e),
        };
        self.note("add_image", &image.hash, &result);
        result
    }

    async fn image(&self, hash: &ImageHash) -> Result<Option<ImageRecord>, IndexError> {
        self.inner.image(hash).await
    }

    async fn hash_of(&self, name: &str) -> Result<Option<ImageHash>, IndexError> {
        self.inner.hash_of(name).await
    }

    async fn thumbnail(&self, hash: &ImageHash) -> Result<Option<Vec<u8>>, IndexError> {
        self.inner.thumbnail(hash).await
    }

    async fn record_failure(&self, hash: &ImageHash, reason: &str) -> Result<(), IndexError> {
        self.inner.record_failure(hash, reason).await
    }

    async fn failure(&self, hash: &ImageHash) -> Result<Option<ImageFailure>, IndexError> {
        self.inner.failure(hash).await
    }

    async fn recent(&self, limit: usize, cursor: Option<String>) -> Result<facerec::ports::ImagePage, IndexError> {
        self.inner.recent(limit, cursor).await
    }

    // Erasure is forwarded untouched: no fault injection or recording (not a pipeline step).
    async fn forget(&self, hashes: &[ImageHash]) -> Result<Forgotten, IndexError> {
        self.inner.forget(hashes).await
    }

    async fn find_faces(&self, faces: &[Encoding], tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        self.inner.find_faces(faces, tolerance).await
    }

    /// Fails while [`FlakyIndex::go_down`] is in force (not recorded as a call); queued
    /// faults of one method leave it answering, as a server that is up would.
    async fn ping(&self) -> Result<(), IndexError> {
        let down = self.faults.lock().expect("lock").down.clone();
        if let Some(t) = &self.timeline {
            t.push(format!("index.ping {}", if down.is_some() { "err" } else { "ok" }));
        }
        match down {
            Some(e) => Err(e),
            None => self.inner.ping().await,
        }
    }
}
