//! [`FakeQueue`] (an [`ImageQueue`] that records accepted images and fails on command) and
//! [`FakeFetcher`] (a URL table with call counts) for the REST front-end's tests.

use async_trait::async_trait;
use facerec::api::ports::{FetchError, UrlFetcher};
use facerec::hash::ImageHash;
use facerec::ports::{ImageQueue, QueueError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One accepted submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Its hash.
    pub hash: ImageHash,
    /// Its name.
    pub name: String,
    /// The image bytes.
    pub image: Vec<u8>,
}

#[derive(Default)]
struct QueueState {
    accepted: Vec<Submission>,
    failure: Option<QueueError>,
    refused: usize,
}

/// Accepts everything until told to fail; clones share state.
#[derive(Clone, Default)]
pub struct FakeQueue(Arc<Mutex<QueueState>>);

impl FakeQueue {
    /// An empty, working queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every submission accepted so far.
    pub fn accepted(&self) -> Vec<Submission> {
        self.0.lock().expect("lock").accepted.clone()
    }

    /// Submissions refused so far.
    pub fn refused(&self) -> usize {
        self.0.lock().expect("lock").refused
    }

    /// From now on every submission fails with `failure` (`None`: works again).
    pub fn fail_with(&self, failure: Option<QueueError>) {
        self.0.lock().expect("lock").failure = failure;
    }
}

#[async_trait]
impl ImageQueue for FakeQueue {
    async fn submit(&self, hash: &ImageHash, name: &str, image: &[u8]) -> Result<(), QueueError> {
        let mut s = self.0.lock().expect("lock");
        if let Some(e) = s.failure.clone() {
            s.refused += 1;
            return Err(e);
        }
        s.accepted.push(Submission { hash: hash.clone(), name: name.to_owned(), image: image.to_vec() });
        Ok(())
    }
}

/// What the fake answers for one URL.
type Answer = Result<Vec<u8>, FetchError>;

/// Answers URLs from a table; anything else is [`FetchError::Unreachable`].
#[derive(Clone, Default)]
pub struct FakeFetcher {
    table: Arc<Mutex<HashMap<String, Answer>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl FakeFetcher {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// `url` answers `result`.
    pub fn set(&self, url: &str, result: Result<Vec<u8>, FetchError>) {
        self.table.lock().expect("lock").insert(url.to_owned(), result);
    }

    /// Every URL asked for, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

#[async_trait]
impl UrlFetcher for FakeFetcher {
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        self.calls.lock().expect("lock").push(url.to_owned());
        self.table
            .lock()
            .expect("lock")
            .get(url)
            .cloned()
            .unwrap_or_else(|| Err(FetchError::Unreachable(format!("{url}: not in the fake's table"))))
    }
}
