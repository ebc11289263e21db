//! The dlib encoder against face_recognition 1.3.0: its published expectations, Python's
//! own output on the same images, and the image formats users send.
//!
//! Needs the `dlib` feature, the models and sample images (`scripts/setup.sh`), and for the
//! parity test the Python reference (`scripts/python-env.sh`, `FACEREC_PYTHON`).
//! Missing inputs fail these tests; they never skip.
#![cfg(feature = "dlib")]

mod expectations;
mod formats;
mod parity;

use facerec::adapters::dlib::{DlibEncoder, EncoderSettings};
use facerec::face::EncodedImage;
use facerec::hash::ImageHash;
use facerec::ports::{EncodeError, FaceEncoder};
use facerec_fakes::testkit::fixtures::sample_image;
use std::sync::OnceLock;

/// An encoder with face_recognition's defaults, shared by all tests of this binary (the
/// models load once).
fn encoder() -> &'static DlibEncoder {
    static ENCODER: OnceLock<DlibEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        DlibEncoder::start(EncoderSettings { threads: 2, ..EncoderSettings::default() })
            .expect("models: run scripts/setup.sh")
    })
}

/// Encodes bytes with the shared encoder.
async fn encode(bytes: &[u8]) -> Result<EncodedImage, EncodeError> {
    encoder().encode(&ImageHash::of_bytes(bytes), bytes).await
}

/// Encodes a sample image; it must decode.
async fn encode_file(file: &str) -> EncodedImage {
    encode(&sample_image(file)).await.unwrap_or_else(|e| panic!("{file}: {e}"))
}
