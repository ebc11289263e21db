//! The production [`FaceEncoder`](crate::ports::FaceEncoder): dlib, as Python's
//! face_recognition uses it.
//!
//! Steps per image, as face_recognition 1.3.0 does them: decode to RGB; detect with HOG
//! (upsampled `upsample` times) or the mmod CNN; predict 5 (or 68) landmarks on the
//! detector's *untrimmed* rectangle; cut 150 px face chips with 0.25 padding; run the
//! ResNet (`jitters` times per face); report boxes trimmed to the image.
//!
//! Work runs on a pool of OS threads, each owning its own copy of the models (dlib's
//! detectors and networks are not thread-safe), so no lock is held across dlib calls.
//! Without the `dlib` Cargo feature, [`DlibEncoder::start`] returns an error.

pub mod models;
#[cfg(feature = "dlib")]
mod pool;
#[cfg(feature = "dlib")]
mod shim;

use crate::decode::DecodeLimits;
use std::path::PathBuf;

/// Which face detector to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Detector {
    /// HOG + linear SVM: fast on CPU, face_recognition's default.
    Hog,
    /// The same HOG detector through dlib's own scan code: the same boxes, about twice the
    /// time. For comparing (benchmarks, a suspected difference); `hog` is the same result.
    HogDlib,
    /// mmod CNN: finds more faces at more angles, ~10-50x slower on CPU.
    Cnn,
}

/// Which landmark model to align faces with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Landmarks {
    /// 5 points (face_recognition's default, "small").
    #[value(name = "5")]
    Five,
    /// 68 points ("large").
    #[value(name = "68")]
    SixtyEight,
}

/// Everything that determines what the encoder finds.
#[derive(Debug, Clone)]
pub struct EncoderSettings {
    /// Folder holding the model files.
    pub model_dir: PathBuf,
    /// Face detector.
    pub detector: Detector,
    /// Times to upsample before detecting (finds smaller faces, costs ~4x per step).
    pub upsample: u32,
    /// Landmark model.
    pub landmarks: Landmarks,
    /// Times to re-sample each face when encoding (1 = no jitter).
    pub jitters: u32,
    /// Encoder threads (each holds its own ~22 MB of models). Default:
    /// [`default_threads`].
    pub threads: usize,
    /// Decode limits.
    pub decode: DecodeLimits,
    /// More faces than this in one image is an error (the image is dead-lettered).
    pub max_faces: usize,
    /// MiB the images being encoded may take together, by the measured estimate
    /// [`bytes_per_pixel`]; an image waits until its share is free, and one larger than the
    /// whole budget runs alone.
    pub memory_budget_mib: u32,
    /// Thumbnails made from the decoded pixels (`FACEREC_THUMBNAIL_PX`).
    pub thumbnails: crate::thumbnail::ThumbnailSettings,
}

/// Peak memory of encoding one image, per pixel, with `upsample` (measured with
/// `facerec faces` on 1-20 MP photos: 12 bytes at upsample 0, 49 at 1; each upsampling
/// quadruples the pixels dlib's HOG pyramid works on). docs/RELIABILITY.md.
pub fn bytes_per_pixel(upsample: u32) -> u64 {
    49u64.saturating_mul(4u64.saturating_pow(upsample)).div_ceil(4)
}

/// MiB of the memory budget one typical photo needs while encoded: a 12 MP phone photo at
/// upsample 1 takes 12e6 x 49 bytes, about 560 MiB; 512 keeps the round figure.
const TYPICAL_IMAGE_MIB: u32 = 512;

/// Encoder threads worth starting: one per core, but no more than the memory budget can
/// feed with typical photos at once (a thread waiting for budget only holds its models).
pub fn default_threads(memory_budget_mib: u32) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min((memory_budget_mib / TYPICAL_IMAGE_MIB).max(1) as usize)
}

impl Default for EncoderSettings {
    fn default() -> Self {
        let memory_budget_mib = 2048;
        Self {
            model_dir: models::default_model_dir(),
            detector: Detector::Hog,
            upsample: 1,
            landmarks: Landmarks::Five,
            jitters: 1,
            threads: default_threads(memory_budget_mib),
            decode: DecodeLimits::default(),
            max_faces: 1000,
            memory_budget_mib,
            thumbnails: crate::thumbnail::ThumbnailSettings::default(),
        }
    }
}

#[cfg(feature = "dlib")]
pub use pool::DlibEncoder;

/// Why the encoder could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A model file is not where the settings say (a configuration mistake).
    #[error(
        "model file {} not found; run scripts/setup.sh (it fetches face_recognition_models==0.3.0) \
         or point --models / FACEREC_MODELS at a folder holding it",
        path.display()
    )]
    MissingModel {
        /// The file looked for.
        path: PathBuf,
    },
    /// This binary has no dlib.
    #[error(
        "this facerec was built without dlib; rebuild with `cargo build --release --features dlib` \
         (needs libdlib-dev and libopenblas-dev, see README)"
    )]
    NotBuilt,
    /// A model could not be loaded, a thread not started, or the CPU lacks what the shim
    /// was compiled for.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for StartError {
    fn from(message: String) -> Self {
        Self::Failed(message)
    }
}

/// Stand-in when the crate is built without dlib: starting it explains how to get one.
#[cfg(not(feature = "dlib"))]
pub struct DlibEncoder(std::convert::Infallible);

#[cfg(not(feature = "dlib"))]
impl DlibEncoder {
    /// Always fails: this build has no dlib.
    pub fn start(_settings: EncoderSettings) -> Result<Self, StartError> {
        Err(StartError::NotBuilt)
    }
}

#[cfg(not(feature = "dlib"))]
#[async_trait::async_trait]
impl crate::ports::FaceEncoder for DlibEncoder {
    async fn encode(
        &self,
        _hash: &crate::hash::ImageHash,
        _image: &[u8],
    ) -> Result<crate::face::EncodedImage, crate::ports::EncodeError> {
        match self.0 {}
    }
    fn fingerprint(&self) -> String {
        match self.0 {}
    }
}
