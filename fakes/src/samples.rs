//! face_recognition 1.3.0's test images, fetched by `scripts/setup.sh` (never committed):
//! their names and where they are, for the dlib tests, benchmarks and examples.

use std::path::PathBuf;

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
