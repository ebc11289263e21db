//! The recorded [`FaceEncoder`]: replays encodings that `facerec record` saved from the
//! real dlib encoder, so tests and replays run without dlib or models.
//!
//! An image is looked up by its key (the message's hash), then by the SHA-256 of its
//! bytes. The file is JSON (`fixtures/encodings/*.json`), diffable and exact: encodings
//! are written with shortest round-trip formatting and read back bit for bit.

use crate::face::{EncodedImage, Face};
use crate::hash::ImageHash;
use crate::ports::{EncodeError, FaceEncoder};
use crate::thumbnail::ThumbnailSettings;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Format tag of a recording file.
pub const FORMAT: &str = "facerec-recorded-encodings/1";

/// One recorded image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedImage {
    /// SHA-256 of the image file.
    pub hash: ImageHash,
    /// File name it was recorded from.
    pub name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Faces as the encoder found them.
    pub faces: Vec<Face>,
}

/// A recording file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// Always [`FORMAT`].
    pub format: String,
    /// Fingerprint of the encoder that made it.
    pub fingerprint: String,
    /// The images.
    pub images: Vec<RecordedImage>,
}

/// A recording file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// Cannot read or write the file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not JSON of the expected shape.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Another version of the format.
    #[error("{}: format {found:?}, expected {FORMAT:?}", path.display())]
    Format {
        /// The file.
        path: std::path::PathBuf,
        /// Its format string.
        found: String,
    },
}

impl Recording {
    /// Reads a recording file.
    ///
    /// # Errors
    /// Unreadable file, invalid JSON, or another format.
    pub fn load(path: &Path) -> Result<Self, RecordingError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| RecordingError::Io { path: path.to_owned(), source })?;
        let recording: Recording =
            serde_json::from_str(&text).map_err(|source| RecordingError::Json { path: path.to_owned(), source })?;
        if recording.format != FORMAT {
            return Err(RecordingError::Format { path: path.to_owned(), found: recording.format });
        }
        Ok(recording)
    }

    /// Writes the file (pretty JSON, so diffs stay readable).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), RecordingError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|source| RecordingError::Json { path: path.to_owned(), source })?;
        std::fs::write(path, text + "\n").map_err(|source| RecordingError::Io { path: path.to_owned(), source })
    }

    /// The image recorded from a file called `name`.
    pub fn by_name(&self, name: &str) -> Option<&RecordedImage> {
        self.images.iter().find(|i| i.name == name)
    }
}

/// Replays a [`Recording`].
pub struct RecordedEncoder {
    images: HashMap<ImageHash, RecordedImage>,
    fingerprint: String,
    delay: std::time::Duration,
    thumbnails: ThumbnailSettings,
}

impl RecordedEncoder {
    /// An encoder that knows the images of `recording`, making thumbnails of the default
    /// size.
    pub fn new(recording: Recording) -> Self {
        let fingerprint = recording.fingerprint;
        let images = recording.images.into_iter().map(|i| (i.hash.clone(), i)).collect();
        Self { images, fingerprint, delay: std::time::Duration::ZERO, thumbnails: ThumbnailSettings::default() }
    }

    /// Makes thumbnails of this size (or none): from the image bytes when they decode
    /// (the recorded faces are used whatever the bytes are).
    pub fn with_thumbnails(mut self, thumbnails: ThumbnailSettings) -> Self {
        self.thumbnails = thumbnails;
        self
    }

    /// Makes every image take `delay` (without using CPU), to stand in for dlib's time in
    /// fault drills and pipeline benchmarks.
    pub fn with_delay(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Loads a recording file.
    ///
    /// # Errors
    /// See [`Recording::load`].
    pub fn load(path: &Path) -> Result<Self, RecordingError> {
        Recording::load(path).map(Self::new)
    }
}

#[async_trait]
impl FaceEncoder for RecordedEncoder {
    async fn encode(&self, hash: &ImageHash, image: &[u8]) -> Result<EncodedImage, EncodeError> {
        let found = self.images.get(hash).or_else(|| self.images.get(&ImageHash::of_bytes(image)));
        let recorded = found.ok_or_else(|| EncodeError::NotRecorded(hash.clone()))?;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let thumbnail = if self.thumbnails.enabled() {
            // Decoding is CPU work: off the async executor. Bytes that do not decode (test
            // stand-ins) just get no thumbnail.
            let (bytes, settings) = (image.to_vec(), self.thumbnails);
            tokio::task::spawn_blocking(move || {
                let pixels = crate::decode::decode(&bytes, &crate::decode::DecodeLimits::default()).ok()?;
                crate::thumbnail::make(&pixels, settings)
            })
            .await
            .ok()
            .flatten()
        } else {
            None
        };
        Ok(EncodedImage {
            width: recorded.width,
            height: recorded.height,
            faces: recorded.faces.clone(),
            times: Default::default(),
            thumbnail,
        })
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
}
