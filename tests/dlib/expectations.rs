//! face_recognition 1.3.0's own test expectations (tests/test_face_recognition.py).

use crate::encode_file;
use facerec::face::BoundingBox;
use facerec_fakes::testkit::fixtures::recording;

fn bbox(top: i64, right: i64, bottom: i64, left: i64) -> BoundingBox {
    BoundingBox { top, right, bottom, left }
}

#[tokio::test]
async fn boxes_are_exactly_face_recognitions() {
    for (file, size, expected) in [
        ("obama.jpg", (910, 1137), bbox(142, 617, 409, 349)),
        ("obama_partial_face.jpg", (491, 1137), bbox(142, 191, 365, 0)),
        ("obama_partial_face2.jpg", (551, 1137), bbox(142, 551, 409, 349)),
    ] {
        let image = encode_file(file).await;
        assert_eq!((image.width, image.height), size, "{file}");
        let boxes: Vec<BoundingBox> = image.faces.iter().map(|f| f.bbox).collect();
        assert_eq!(boxes, vec![expected], "{file}");
    }
}

#[tokio::test]
async fn rgba_png_drops_alpha_and_finds_the_face() {
    let image = encode_file("32bit.png").await;
    assert_eq!((image.width, image.height), (626, 1200));
    assert_eq!(image.faces.len(), 1);
    assert_eq!((image.faces[0].bbox.top, image.faces[0].bbox.bottom), (290, 558));
}

#[tokio::test]
async fn same_person_within_tolerance_other_person_beyond() {
    let obama = encode_file("obama.jpg").await.faces[0].encoding;
    let obama2 = encode_file("obama2.jpg").await.faces[0].encoding;
    let obama3 = encode_file("obama3.jpg").await.faces[0].encoding;
    let biden = encode_file("biden.jpg").await.faces[0].encoding;
    assert!(obama.distance(&obama2) <= 0.6);
    assert!(obama.distance(&obama3) <= 0.6);
    assert!(obama.distance(&biden) > 0.6);
}

#[tokio::test]
async fn the_committed_recording_matches_what_the_encoder_computes_now() {
    // The hermetic suite replays fixtures/encodings; they must stay true to the encoder.
    for recorded in &recording().images {
        let now = encode_file(&recorded.name).await;
        assert_eq!(now.faces.len(), recorded.faces.len(), "{}", recorded.name);
        for (a, b) in now.faces.iter().zip(&recorded.faces) {
            assert_eq!(a.bbox, b.bbox, "{}", recorded.name);
            let diff = a.encoding.0.iter().zip(b.encoding.0.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(diff < 1e-6, "{}: recording is stale ({diff:e}); re-run `facerec record`", recorded.name);
        }
    }
}
