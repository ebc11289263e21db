//! Where the dlib model files are, and the fingerprint of a set of encoder settings.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// File names, as in the `face_recognition_models` 0.3.0 package.
pub const RESNET: &str = "dlib_face_recognition_resnet_model_v1.dat";
/// 5-point landmark model (face_recognition's default, "small").
pub const LANDMARKS_5: &str = "shape_predictor_5_face_landmarks.dat";
/// 68-point landmark model ("large").
pub const LANDMARKS_68: &str = "shape_predictor_68_face_landmarks.dat";
/// CNN (mmod) face detector.
pub const CNN_DETECTOR: &str = "mmod_human_face_detector.dat";

/// Default model folder: `$FACEREC_MODELS`, else `$XDG_CACHE_HOME/facerec/models`, else
/// `~/.cache/facerec/models` (where `scripts/setup.sh` puts them).
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FACEREC_MODELS") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("facerec").join("models")
}

/// Path of `file` in `dir`, or an error that says how to get it.
pub fn model_file(dir: &Path, file: &str) -> Result<PathBuf, super::StartError> {
    let path = dir.join(file);
    if path.is_file() { Ok(path) } else { Err(super::StartError::MissingModel { path }) }
}

/// First 16 hex digits of the file's SHA-256: enough to tell model versions apart.
pub fn short_digest(path: &Path) -> Result<String, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize())[..16].to_owned())
}
