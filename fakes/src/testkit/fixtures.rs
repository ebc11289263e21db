//! Where the test inputs are: face_recognition 1.3.0's sample images, fetched by
//! `scripts/setup.sh` (never committed), and the repository's `fixtures/` folder with the
//! encodings `facerec record` saved from those images.

use facerec::adapters::recorded_encoder::Recording;
use facerec::face::EncodedImage;
use facerec::hash::ImageHash;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The seven sample images, in the order every table and test lists them.
pub const SAMPLE_IMAGES: [&str; 7] = [
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "32bit.png",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
];

/// The folder holding them: `FACEREC_IMAGES`, or the set-up cache. Panics with the fix
/// when they are missing.
pub fn sample_images_dir() -> PathBuf {
    let dir = std::env::var_os("FACEREC_IMAGES").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME");
        PathBuf::from(home).join(".cache/facerec/images")
    });
    assert!(dir.join("obama.jpg").is_file(), "sample images missing in {}: run scripts/setup.sh", dir.display());
    dir
}

/// Bytes of a sample image, by file name (`"obama.jpg"`).
pub fn sample_image(file: &str) -> Vec<u8> {
    let path = sample_images_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The repository's `fixtures/` folder (this crate sits one level below the root).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("fakes/ is inside the repository").join("fixtures")
}

/// The encodings `facerec record` saved from the sample images: the file a worker's
/// `--encodings` flag takes.
pub fn recorded_encodings_path() -> PathBuf {
    fixtures_dir().join("encodings/face_recognition_test_images.json")
}

/// Those encodings, loaded once per test binary.
pub fn recording() -> &'static Recording {
    static RECORDING: OnceLock<Recording> = OnceLock::new();
    RECORDING.get_or_init(|| Recording::load(&recorded_encodings_path()).expect("recorded encodings"))
}

/// Hash of a recorded sample image, by file name (`"obama.jpg"`).
pub fn hash_of(file: &str) -> ImageHash {
    recording().by_name(file).unwrap_or_else(|| panic!("{file} not recorded")).hash.clone()
}

/// What the encoder found in a recorded sample image.
pub fn encoded(file: &str) -> EncodedImage {
    let r = recording().by_name(file).unwrap_or_else(|| panic!("{file} not recorded"));
    EncodedImage {
        width: r.width,
        height: r.height,
        faces: r.faces.clone(),
        times: Default::default(),
        thumbnail: None,
    }
}
