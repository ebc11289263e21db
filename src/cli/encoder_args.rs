//! Encoder flags shared by `faces`, `scan`, `record`, `worker` and `replay`.

use crate::adapters::dlib::{Detector, EncoderSettings, Landmarks, default_threads, models};
use crate::decode::DecodeLimits;
use crate::thumbnail::ThumbnailSettings;
use std::path::PathBuf;

/// How faces are found and encoded.
#[derive(Debug, Clone, clap::Args)]
pub struct EncoderArgs {
    /// Folder with the dlib model files [default: $XDG_CACHE_HOME/facerec/models]
    #[arg(long, env = "FACEREC_MODELS", value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Face detector.
    #[arg(long, env = "FACEREC_DETECTOR", value_enum, default_value_t = EncoderSettings::default().detector)]
    pub detector: Detector,
    /// Times to upsample the image before detecting (face_recognition's default is 1).
    #[arg(long, env = "FACEREC_UPSAMPLE", default_value_t = EncoderSettings::default().upsample)]
    pub upsample: u32,
    /// Landmark model used to align faces.
    #[arg(long, env = "FACEREC_LANDMARKS", value_enum, default_value_t = EncoderSettings::default().landmarks)]
    pub landmarks: Landmarks,
    /// Times to re-sample each face when encoding (higher is slower, slightly more accurate).
    #[arg(long, env = "FACEREC_JITTERS", default_value_t = EncoderSettings::default().jitters)]
    pub jitters: u32,
    /// Encoder threads, each holding ~22 MB of models [default: the cores, at most one per
    /// 512 MiB of FACEREC_MEMORY_BUDGET_MB]
    #[arg(long, env = "FACEREC_ENCODER_THREADS")]
    pub encoder_threads: Option<usize>,
    /// Largest image, in pixels; larger ones are refused before decoding.
    #[arg(long, env = "FACEREC_MAX_PIXELS", default_value_t = DecodeLimits::default().max_pixels)]
    pub max_pixels: u64,
    /// Largest image file, in bytes.
    #[arg(long, env = "FACEREC_MAX_IMAGE_BYTES", default_value_t = DecodeLimits::default().max_bytes)]
    pub max_image_bytes: usize,
    /// Most faces accepted in one image.
    #[arg(long, env = "FACEREC_MAX_FACES", default_value_t = EncoderSettings::default().max_faces)]
    pub max_faces: usize,
    /// MiB that the images being encoded may use together (about 49 bytes per pixel at
    /// upsample 1, 12 at 0); larger images wait, one over the whole budget runs alone.
    #[arg(long, env = "FACEREC_MEMORY_BUDGET_MB", default_value_t = EncoderSettings::default().memory_budget_mib)]
    pub memory_budget_mb: u32,
    /// Do not apply EXIF orientation (face_recognition does not apply it).
    #[arg(long, env = "FACEREC_NO_EXIF_ORIENTATION")]
    pub no_exif_orientation: bool,
    /// Long side of the JPEG thumbnail stored with each image, in pixels (never upscaled);
    /// 0 stores none.
    #[arg(long, env = "FACEREC_THUMBNAIL_PX", default_value_t = ThumbnailSettings::default().max_px)]
    pub thumbnail_px: u32,
}

impl EncoderArgs {
    /// dlib with these flags, or the recording in `encodings` when one is given (each
    /// answer after `delay`, to stand in for dlib's time in drills).
    pub fn choice(&self, encodings: Option<&std::path::Path>, delay: std::time::Duration) -> crate::app::EncoderChoice {
        match encodings {
            Some(file) => {
                crate::app::EncoderChoice::Recorded { file: file.to_owned(), delay, thumbnails: self.thumbnails() }
            }
            None => crate::app::EncoderChoice::Dlib(self.settings()),
        }
    }

    /// The settings these flags describe.
    pub fn settings(&self) -> EncoderSettings {
        EncoderSettings {
            model_dir: self.models.clone().unwrap_or_else(models::default_model_dir),
            detector: self.detector,
            upsample: self.upsample,
            landmarks: self.landmarks,
            jitters: self.jitters.max(1),
            threads: self.encoder_threads.unwrap_or_else(|| default_threads(self.memory_budget_mb)).max(1),
            decode: DecodeLimits {
                max_bytes: self.max_image_bytes,
                max_pixels: self.max_pixels,
                apply_exif_orientation: !self.no_exif_orientation,
            },
            max_faces: self.max_faces,
            memory_budget_mib: self.memory_budget_mb,
            thumbnails: self.thumbnails(),
        }
    }

    /// The thumbnail settings these flags describe.
    pub fn thumbnails(&self) -> ThumbnailSettings {
        ThumbnailSettings { max_px: self.thumbnail_px }
    }
}
