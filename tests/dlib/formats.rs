//! Image formats, EXIF orientation, several faces, and inputs that must be refused.

use crate::{encode, encode_file};
use facerec::adapters::dlib::{DlibEncoder, EncoderSettings};
use facerec::decode::DecodeLimits;
use facerec::hash::ImageHash;
use facerec::ports::{EncodeError, FaceEncoder};
use facerec_fakes::testkit::fixtures::{sample_image, sample_images_dir};
use image::{DynamicImage, ImageEncoder, ImageFormat};
use std::io::Cursor;

fn decoded(file: &str) -> DynamicImage {
    image::load_from_memory(&sample_image(file)).unwrap()
}

fn write(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

#[tokio::test]
async fn every_supported_format_finds_the_face() {
    let obama = decoded("obama.jpg");
    let variants = [
        ("png 16-bit", write(&DynamicImage::ImageRgb16(obama.to_rgb16()), ImageFormat::Png)),
        ("png gray", write(&DynamicImage::ImageLuma8(obama.to_luma8()), ImageFormat::Png)),
        ("bmp", write(&obama, ImageFormat::Bmp)),
        ("webp", write(&DynamicImage::ImageRgba8(obama.to_rgba8()), ImageFormat::WebP)),
        ("gif", write(&DynamicImage::ImageRgba8(obama.to_rgba8()), ImageFormat::Gif)),
        ("jpeg gray", write(&DynamicImage::ImageLuma8(obama.to_luma8()), ImageFormat::Jpeg)),
    ];
    for (what, bytes) in variants {
        let found = encode(&bytes).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(found.faces.len(), 1, "{what}");
        let b = found.faces[0].bbox;
        assert!((b.top - 142).abs() <= 12 && (b.left - 349).abs() <= 12, "{what}: {b:?}");
    }
}

/// A TIFF blob holding only an Orientation tag.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
    tiff.extend_from_slice(&value.to_le_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    tiff
}

#[tokio::test]
async fn exif_orientation_is_applied_unless_turned_off() {
    // Store the picture turned 90 degrees counter-clockwise, tagged "rotate 90 CW to view".
    let turned = decoded("obama.jpg").rotate270().to_rgb8();
    let mut bytes = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
    encoder.set_exif_metadata(exif_orientation(6)).unwrap();
    encoder.write_image(&turned, turned.width(), turned.height(), image::ExtendedColorType::Rgb8).unwrap();

    let upright = encode(&bytes).await.unwrap();
    assert_eq!((upright.width, upright.height), (910, 1137), "width and height after orientation");
    assert_eq!(upright.faces.len(), 1);

    let raw = DlibEncoder::start(EncoderSettings {
        threads: 1,
        decode: DecodeLimits { apply_exif_orientation: false, ..DecodeLimits::default() },
        ..EncoderSettings::default()
    })
    .unwrap();
    let sideways = raw.encode(&ImageHash::of_bytes(&bytes), &bytes).await.unwrap();
    assert_eq!((sideways.width, sideways.height), (1137, 910));
    assert!(sideways.faces.is_empty(), "the HOG detector finds no sideways face");
}

#[tokio::test]
async fn a_group_photo_gives_one_face_per_person_each_matching_its_portrait() {
    let (obama, biden) = (decoded("obama.jpg").to_rgb8(), decoded("biden.jpg").to_rgb8());
    let mut group = image::RgbImage::new(obama.width() + biden.width(), obama.height().max(biden.height()));
    image::imageops::replace(&mut group, &obama, 0, 0);
    image::imageops::replace(&mut group, &biden, i64::from(obama.width()), 0);
    let bytes = write(&DynamicImage::ImageRgb8(group), ImageFormat::Png);
    let found = encode(&bytes).await.unwrap();
    assert_eq!(found.faces.len(), 2);
    let portrait_obama = encode_file("obama.jpg").await.faces[0].encoding;
    let portrait_biden = encode_file("biden.jpg").await.faces[0].encoding;
    let (left, right) = if found.faces[0].bbox.left < found.faces[1].bbox.left {
        (&found.faces[0], &found.faces[1])
    } else {
        (&found.faces[1], &found.faces[0])
    };
    assert!(left.encoding.distance(&portrait_obama) < 0.1);
    assert!(right.encoding.distance(&portrait_biden) < 0.1);
    assert!(left.encoding.distance(&portrait_biden) > 0.6);
}

#[tokio::test]
async fn cmyk_jpeg_decodes() {
    // libjpeg cannot turn CMYK into RGB; the pure-Rust decoder takes over.
    let python = std::env::var("FACEREC_PYTHON").expect("FACEREC_PYTHON (scripts/test.sh sets it)");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cmyk.jpg");
    let src = sample_images_dir().join("obama.jpg");
    let status = std::process::Command::new(python)
        .args(["-c", "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('CMYK').save(sys.argv[2])"])
        .arg(&src)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let found = encode(&std::fs::read(&out).unwrap()).await.unwrap();
    assert_eq!(found.faces.len(), 1);
}

#[tokio::test]
async fn truncated_garbage_and_oversized_images_are_refused_with_reasons() {
    let jpeg = sample_image("obama.jpg");
    match encode(&jpeg[..jpeg.len() / 2]).await {
        Err(EncodeError::NotAnImage(reason)) => {
            assert!(reason.contains("Premature end"), "{reason}")
        }
        other => panic!("truncated JPEG: {other:?}"),
    }
    let garbage = encode(b"\x00\x01 random bytes").await;
    assert!(matches!(&garbage, Err(EncodeError::NotAnImage(r)) if r.contains("unknown format")), "{garbage:?}");
    // A GIF header whose size fields are text: read as a 28192x29807 image, refused by size.
    let fake_gif = encode(b"GIF89a not really").await;
    assert!(matches!(fake_gif, Err(EncodeError::OverLimit(_) | EncodeError::NotAnImage(_))), "{fake_gif:?}");
    let small = DlibEncoder::start(EncoderSettings {
        threads: 1,
        decode: DecodeLimits { max_pixels: 1_000_000, ..DecodeLimits::default() },
        ..EncoderSettings::default()
    })
    .unwrap();
    match small.encode(&ImageHash::of_bytes(&jpeg), &jpeg).await {
        Err(EncodeError::OverLimit(reason)) => assert!(reason.contains("910x1137"), "{reason}"),
        other => panic!("over the pixel limit: {other:?}"),
    }
}

#[tokio::test]
async fn a_tiny_image_has_no_face() {
    let one = write(&DynamicImage::ImageRgb8(image::RgbImage::new(1, 1)), ImageFormat::Png);
    assert!(encode(&one).await.unwrap().faces.is_empty());
}
