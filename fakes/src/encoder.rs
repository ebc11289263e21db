//! [`FakeEncoder`]: canned results per image hash, call counts, and a gate that holds
//! calls until the test opens it (to line up races).

use async_trait::async_trait;
use facerec::face::EncodedImage;
use facerec::hash::ImageHash;
use facerec::ports::{EncodeError, FaceEncoder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Returns what it was told to for each hash; counts calls.
#[derive(Clone, Default)]
pub struct FakeEncoder {
    results: Arc<Mutex<HashMap<ImageHash, Result<EncodedImage, EncodeError>>>>,
    calls: Arc<Mutex<Vec<ImageHash>>>,
    gate: Option<Arc<Semaphore>>,
}

impl FakeEncoder {
    /// An encoder that knows no image (every call fails with `NotRecorded`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `encode(hash, ..)` return `result`.
    pub fn set(&self, hash: &ImageHash, result: Result<EncodedImage, EncodeError>) {
        self.results.lock().expect("lock").insert(hash.clone(), result);
    }

    /// Makes every call wait for a permit of the returned semaphore.
    pub fn gated(mut self) -> (Self, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        self.gate = Some(gate.clone());
        (self, gate)
    }

    /// Hashes passed to `encode`, in call order.
    pub fn calls(&self) -> Vec<ImageHash> {
        self.calls.lock().expect("lock").clone()
    }
}

#[async_trait]
impl FaceEncoder for FakeEncoder {
    async fn encode(&self, hash: &ImageHash, _image: &[u8]) -> Result<EncodedImage, EncodeError> {
        self.calls.lock().expect("lock").push(hash.clone());
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate closed").forget();
        }
        let result = self.results.lock().expect("lock").get(hash).cloned();
        result.unwrap_or_else(|| Err(EncodeError::NotRecorded(hash.clone())))
    }

    fn fingerprint(&self) -> String {
        "fake-encoder".to_owned()
    }
}
