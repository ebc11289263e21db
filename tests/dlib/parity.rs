//! Encodings equal Python's face_recognition on the same images, to 1e-4 per component,
//! border faces included: Python runs here, now, on the same files.

use crate::encode_file;
use facerec::adapters::dlib::{DlibEncoder, EncoderSettings};
use facerec::hash::ImageHash;
use facerec::ports::FaceEncoder;
use facerec_fakes::testkit::fixtures::{SAMPLE_IMAGES as FILES, sample_images_dir};
use serde_json::Value;
use std::process::Command;

/// face_recognition's output, one JSON object per file, from scripts/face_recognition_reference.py.
fn python_reference(upsample: u32) -> Vec<Value> {
    let python = std::env::var("FACEREC_PYTHON")
        .expect("FACEREC_PYTHON must point at the venv made by scripts/python-env.sh (scripts/test.sh sets it)");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/face_recognition_reference.py");
    let paths: Vec<_> = FILES.iter().map(|f| sample_images_dir().join(f)).collect();
    let out = Command::new(python)
        .arg(script)
        .arg("--upsample")
        .arg(upsample.to_string())
        .args(&paths)
        .output()
        .expect("running the Python reference");
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn assert_same(file: &str, ours: &facerec::face::EncodedImage, theirs: &Value) -> f64 {
    let faces = theirs["faces"].as_array().unwrap();
    assert_eq!(ours.faces.len(), faces.len(), "{file}: face count");
    let mut worst = 0f64;
    for (a, b) in ours.faces.iter().zip(faces) {
        let theirs_box = (b["top"].as_i64(), b["right"].as_i64(), b["bottom"].as_i64(), b["left"].as_i64());
        let ours_box = (Some(a.bbox.top), Some(a.bbox.right), Some(a.bbox.bottom), Some(a.bbox.left));
        assert_eq!(ours_box, theirs_box, "{file}: box");
        for (x, y) in a.encoding.0.iter().zip(b["encoding"].as_array().unwrap()) {
            worst = worst.max((x - y.as_f64().unwrap()).abs());
        }
    }
    assert!(worst <= 1e-4, "{file}: encodings differ by {worst:e}");
    worst
}

#[tokio::test]
async fn encodings_match_python_face_recognition_default_settings() {
    let reference = python_reference(1);
    let mut worst = 0f64;
    for (file, theirs) in FILES.iter().zip(&reference) {
        let ours = encode_file(file).await;
        worst = worst.max(assert_same(file, &ours, theirs));
    }
    eprintln!("largest component difference vs face_recognition (upsample 1): {worst:e}");
}

#[tokio::test]
async fn encodings_match_python_without_upsampling() {
    let reference = python_reference(0);
    let encoder =
        DlibEncoder::start(EncoderSettings { upsample: 0, threads: 1, ..EncoderSettings::default() }).unwrap();
    for (file, theirs) in FILES.iter().zip(&reference) {
        let bytes = std::fs::read(sample_images_dir().join(file)).unwrap();
        let ours = encoder.encode(&ImageHash::of_bytes(&bytes), &bytes).await.unwrap();
        assert_same(file, &ours, theirs);
    }
}
