//! Faces as the rest of the system sees them: a box, a 128-d encoding, and the result of
//! encoding one image.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Length of a dlib face encoding.
pub const ENCODING_DIMS: usize = 128;

/// Bytes of one encoding in Redis db 3: 128 little-endian f64 (`numpy.frombuffer(b, '<f8')`).
pub const ENCODING_BYTES: usize = ENCODING_DIMS * 8;

/// A face box in image pixels, in face_recognition's `(top, right, bottom, left)` order and
/// convention (dlib's rectangle edges), trimmed to the image as face_recognition trims it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BoundingBox {
    /// First row of the face.
    pub top: i64,
    /// Right edge (at most the image width).
    pub right: i64,
    /// Bottom edge (at most the image height).
    pub bottom: i64,
    /// First column of the face.
    pub left: i64,
}

impl BoundingBox {
    /// Trims a detector rectangle to an image of `width` x `height`, as face_recognition's
    /// `_trim_css_to_bounds` does.
    pub fn trimmed(top: i64, right: i64, bottom: i64, left: i64, width: u32, height: u32) -> Self {
        Self {
            top: top.max(0),
            right: right.min(i64::from(width)),
            bottom: bottom.min(i64::from(height)),
            left: left.max(0),
        }
    }
}

/// A 128-d face encoding. Stored as f64 because that is the Redis contract; dlib computes it
/// in f32, so every encoding dlib produces is exactly representable as f32.
#[derive(Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Encoding(#[serde(with = "encoding_serde")] pub [f64; ENCODING_DIMS]);

impl Encoding {
    /// Euclidean distance, computed in f64.
    pub fn distance(&self, other: &Encoding) -> f64 {
        self.0.iter().zip(other.0.iter()).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt()
    }

    /// The Redis db 3 form: 1024 bytes, 128 little-endian f64.
    pub fn to_le_bytes(&self) -> [u8; ENCODING_BYTES] {
        let mut out = [0u8; ENCODING_BYTES];
        for (chunk, value) in out.chunks_exact_mut(8).zip(self.0.iter()) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        out
    }

    /// Parses the Redis db 3 form. `None` unless exactly 1024 bytes of finite values.
    pub fn from_le_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENCODING_BYTES {
            return None;
        }
        let mut values = [0f64; ENCODING_DIMS];
        for (value, chunk) in values.iter_mut().zip(bytes.chunks_exact(8)) {
            *value = f64::from_le_bytes(chunk.try_into().ok()?);
            if !value.is_finite() {
                return None;
            }
        }
        Some(Self(values))
    }

    /// The face's id in a stored layout (`facerec:layout:<hash>`): the first 16 hex digits
    /// of the SHA-256 of the 1024-byte db 3 form, which ties a box to its member of the
    /// (unordered) db 3 set.
    pub fn id(&self) -> String {
        use sha2::Digest as _;
        hex::encode(&sha2::Sha256::digest(self.to_le_bytes())[..8])
    }

    /// Builds an encoding from a slice of exactly 128 values.
    pub fn from_slice(values: &[f64]) -> Option<Self> {
        Some(Self(values.try_into().ok()?))
    }
}

impl fmt::Debug for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoding([{:.4}, {:.4}, .. ])", self.0[0], self.0[1])
    }
}

mod encoding_serde {
    //! serde has no impls for `[f64; 128]`; encode it as a sequence.
    use super::ENCODING_DIMS;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &[f64; ENCODING_DIMS], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f64; ENCODING_DIMS], D::Error> {
        let v = Vec::<f64>::deserialize(d)?;
        let len = v.len();
        v.try_into().map_err(|_| D::Error::custom(format!("an encoding has {ENCODING_DIMS} values, got {len}")))
    }
}

/// One face found in an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// Where it is, trimmed to the image.
    #[serde(flatten)]
    pub bbox: BoundingBox,
    /// What it looks like.
    pub encoding: Encoding,
}

/// Wall time of each encoder stage for one image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    /// Bytes to RGB pixels.
    pub decode: Duration,
    /// Face detection (including upsampling).
    pub detect: Duration,
    /// Landmark prediction for all faces.
    pub landmarks: Duration,
    /// Face chips and the ResNet for all faces.
    pub encode: Duration,
    /// Storing the faces and comparing them with every stored face (set by the
    /// orchestrator around `FaceIndex::add_image`; zero in the encoder's own report).
    pub store: Duration,
}

impl StageTimes {
    /// Sum of the stages.
    pub fn total(&self) -> Duration {
        self.decode + self.detect + self.landmarks + self.encode + self.store
    }
}

/// What an encoder found in one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedImage {
    /// Width after EXIF orientation, in pixels.
    pub width: u32,
    /// Height after EXIF orientation, in pixels.
    pub height: u32,
    /// Every face found, in detector order.
    pub faces: Vec<Face>,
    /// Per-stage timings (zero for recorded encodings).
    #[serde(skip)]
    pub times: StageTimes,
    /// A JPEG thumbnail of the decoded image (`crate::thumbnail`), when made.
    #[serde(skip)]
    pub thumbnail: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_bytes_round_trip_is_exact_and_numpy_compatible() {
        let mut values = [0f64; ENCODING_DIMS];
        for (i, v) in values.iter_mut().enumerate() {
            *v = (i as f64 - 64.0) / 300.0;
        }
        let enc = Encoding(values);
        let bytes = enc.to_le_bytes();
        assert_eq!(&bytes[..8], &values[0].to_le_bytes());
        assert_eq!(Encoding::from_le_bytes(&bytes), Some(enc));
        assert_eq!(Encoding::from_le_bytes(&bytes[1..]), None);
    }

    #[test]
    fn non_finite_encodings_are_rejected() {
        let mut bytes = Encoding([0.0; ENCODING_DIMS]).to_le_bytes();
        bytes[..8].copy_from_slice(&f64::NAN.to_le_bytes());
        assert_eq!(Encoding::from_le_bytes(&bytes), None);
    }

    #[test]
    fn boxes_are_trimmed_like_face_recognition() {
        let b = BoundingBox::trimmed(-5, 700, 1300, -20, 626, 1200);
        assert_eq!(b, BoundingBox { top: 0, right: 626, bottom: 1200, left: 0 });
    }
}
