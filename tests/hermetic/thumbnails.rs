//! Thumbnails and face layout stored with the faces: recorded encoder + embedded index
//! (kept in a file), through the orchestrator as `facerec serve --recorded` runs it.

use facerec::adapters::embedded_index::EmbeddedIndex;
use facerec::adapters::recorded_encoder::RecordedEncoder;
use facerec::hash::ImageHash;
use facerec::orchestrator::{Orchestrator, Outcome, Settings};
use facerec::ports::{Delivery, DeliveryId, FaceIndex};
use facerec::thumbnail::ThumbnailSettings;
use facerec_fakes::RecordingLogs;
use facerec_fakes::testkit::fixtures::{encoded, hash_of, recorded_encodings_path};
use facerec_fakes::testkit::harness::HOST;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A PNG of `width` x `height` with some structure (gradients), standing in for the
/// recorded photo: the recorded encoder answers by the message's hash, and makes the
/// thumbnail from whatever bytes came.
fn photo(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// A raw-image delivery of `body` under the recorded image `file`'s hash.
fn delivery(file: &str, body: Vec<u8>) -> Delivery {
    let headers = BTreeMap::from([("name".into(), file.into()), ("hash".into(), hash_of(file).to_string())]);
    Delivery { id: DeliveryId(1), body, headers, attempt: 1 }
}

async fn store(index: &Arc<EmbeddedIndex>, thumbnails: ThumbnailSettings, file: &str, body: Vec<u8>) {
    let encoder = RecordedEncoder::load(&recorded_encodings_path()).unwrap().with_thumbnails(thumbnails);
    let orchestrator = Orchestrator::new(encoder, index.clone(), RecordingLogs::new(), Settings::for_host(HOST));
    let outcome = orchestrator.process(&delivery(file, body)).await;
    assert!(matches!(outcome, Outcome::Stored { .. }), "{outcome:?}");
}

fn jpeg_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..3], b"\xff\xd8\xff", "not a JPEG");
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).expect("a JPEG that decodes");
    (img.width(), img.height())
}

/// The layout's boxes are the recorded faces' boxes, in order, each tied to its encoding.
async fn assert_layout(index: &EmbeddedIndex, file: &str) {
    let want = encoded(file);
    let record = index.image(&hash_of(file)).await.unwrap().unwrap();
    let layout = record.layout.expect("layout stored");
    assert_eq!((layout.width, layout.height), (want.width, want.height));
    assert_eq!(layout.faces.len(), want.faces.len());
    for (stored, face) in layout.faces.iter().zip(&want.faces) {
        assert_eq!(stored.bbox, face.bbox);
        assert_eq!(stored.id, face.encoding.id());
        assert_eq!(stored.id.len(), 16);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_stored_image_has_its_thumbnail_and_layout_persisted_and_forget_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.facerec");
    let index = Arc::new(EmbeddedIndex::open(&path).unwrap());
    let obama = hash_of("obama.jpg");
    let want = encoded("obama.jpg");
    store(&index, ThumbnailSettings::default(), "obama.jpg", photo(want.width, want.height)).await;
    store(&index, ThumbnailSettings::default(), "biden.jpg", photo(40, 30)).await;

    let thumb = index.thumbnail(&obama).await.unwrap().expect("thumbnail stored");
    // 910 x 1137 fitted into 256: the long side is 256, the aspect kept.
    assert_eq!(jpeg_size(&thumb), (205, 256));
    // A small image keeps its size: never upscaled.
    assert_eq!(jpeg_size(&index.thumbnail(&hash_of("biden.jpg")).await.unwrap().unwrap()), (40, 30));
    assert!(index.image(&obama).await.unwrap().unwrap().thumbnail);
    assert_layout(&index, "obama.jpg").await;

    // Persisted in the same journal record as the faces: a reopened index has them.
    drop(index);
    let index = Arc::new(EmbeddedIndex::open(&path).unwrap());
    assert_eq!(index.thumbnail(&obama).await.unwrap(), Some(thumb.clone()));
    assert_layout(&index, "obama.jpg").await;

    let out = index.forget(std::slice::from_ref(&obama)).await.unwrap();
    assert_eq!(out.erased.len(), 1);
    assert_eq!(index.thumbnail(&obama).await.unwrap(), None);
    assert!(index.image(&obama).await.unwrap().is_none());
    drop(index);
    let journal = std::fs::read(&path).unwrap();
    assert!(!contains(&journal, &thumb), "the erased thumbnail's bytes are left in the journal");
    let index = EmbeddedIndex::open(&path).unwrap();
    assert_eq!(index.thumbnail(&obama).await.unwrap(), None);
    assert!(index.thumbnail(&hash_of("biden.jpg")).await.unwrap().is_some());
}

#[tokio::test]
async fn zero_turns_thumbnails_off_and_undecodable_bytes_get_none_but_keep_the_layout() {
    let index = Arc::new(EmbeddedIndex::in_memory());
    let want = encoded("obama2.jpg");
    store(&index, ThumbnailSettings::OFF, "obama2.jpg", photo(want.width, want.height)).await;
    assert_eq!(index.thumbnail(&hash_of("obama2.jpg")).await.unwrap(), None);
    assert!(!index.image(&hash_of("obama2.jpg")).await.unwrap().unwrap().thumbnail);
    assert_layout(&index, "obama2.jpg").await;

    store(&index, ThumbnailSettings::default(), "obama3.jpg", b"stand-in".to_vec()).await;
    assert_eq!(index.thumbnail(&hash_of("obama3.jpg")).await.unwrap(), None);
    assert_layout(&index, "obama3.jpg").await;
}

#[tokio::test]
async fn the_thumbnail_setting_flows_from_the_flag_to_the_encoder() {
    // `--thumbnail-px 64` through the CLI's encoder flags and the composition root.
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        encoder: facerec::cli::encoder_args::EncoderArgs,
    }
    let cli = Cli::try_parse_from(["facerec", "--thumbnail-px", "64"]).unwrap();
    let choice = cli.encoder.choice(Some(&recorded_encodings_path()), std::time::Duration::ZERO);
    let encoder = facerec::app::encoder(&choice).unwrap();
    let want = encoded("obama.jpg");
    let hash: ImageHash = hash_of("obama.jpg");
    let got = encoder.encode(&hash, &photo(want.width, want.height)).await.unwrap();
    assert_eq!(jpeg_size(&got.thumbnail.unwrap()), (51, 64));
    // The default is the settings type's.
    let cli = Cli::try_parse_from(["facerec"]).unwrap();
    assert_eq!(cli.encoder.thumbnails(), ThumbnailSettings::default());
    assert_eq!(cli.encoder.settings().thumbnails.max_px, 256);
}
