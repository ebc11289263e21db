//! Shared: the sample images, one encoder for the whole binary.

use facerec::adapters::dlib::{DlibEncoder, EncoderSettings};
use facerec::face::EncodedImage;
use facerec::hash::ImageHash;
use facerec::ports::{EncodeError, FaceEncoder};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The folder with face_recognition's test images (`FACEREC_IMAGES`, or the setup cache).
pub fn images_dir() -> PathBuf {
    facerec_fakes::samples::sample_images_dir()
}

/// Bytes of a sample image.
pub fn image(file: &str) -> Vec<u8> {
    std::fs::read(images_dir().join(file)).unwrap()
}

/// An encoder with face_recognition's defaults, shared by all tests of this binary.
pub fn encoder() -> &'static DlibEncoder {
    static ENCODER: OnceLock<DlibEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        DlibEncoder::start(EncoderSettings { threads: 2, ..EncoderSettings::default() })
            .expect("models: run scripts/setup.sh")
    })
}

/// Encodes bytes with the default encoder.
pub async fn encode(bytes: &[u8]) -> Result<EncodedImage, EncodeError> {
    encoder().encode(&ImageHash::of_bytes(bytes), bytes).await
}

/// Encodes a sample image; it must decode.
pub async fn encode_file(file: &str) -> EncodedImage {
    encode(&image(file)).await.unwrap_or_else(|e| panic!("{file}: {e}"))
}
