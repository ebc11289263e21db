//! Thumbnails and layouts in Redis: written by the store script with the faces (or not at
//! all), read back, erased by FORGET, known to fsck.

use facerec::adapters::redis_index::RedisIndex;
use facerec::face::BoundingBox;
use facerec::fsck::{Violation, check};
use facerec::ports::{FaceIndex, IndexError, NewImage};
use facerec_fakes::testkit::servers::{cleanup, redis, scan_keys};
use facerec_fakes::testkit::{Batch, Names};
use fred::prelude::*;
use sha2::Digest as _;

fn with_view(batch: &Batch, i: usize, thumbnail: &[u8]) -> NewImage {
    let img = &batch.recording.images[i];
    NewImage {
        width: 640,
        height: 480,
        boxes: (0..img.faces.len() as i64)
            .map(|n| BoundingBox { top: n, right: 50 + n, bottom: 60 + n, left: 10 })
            .collect(),
        thumbnail: Some(thumbnail.to_vec()),
        ..NewImage::bare(img.hash.clone(), img.name.clone(), img.faces.iter().map(|f| f.encoding).collect(), "test")
    }
}

#[tokio::test]
async fn the_store_script_writes_layout_and_thumbnail_with_the_faces_and_forget_deletes_them() {
    let names = Names::new("thumbs");
    let batch = Batch::new(3, 1, 7);
    let idx = RedisIndex::connect(names.redis_settings()).await.expect("Redis must be reachable");
    let db0 = redis(0).await;
    let db3 = redis(3).await;
    let thumb = b"\xff\xd8\xff\xe0 a jpeg thumbnail".to_vec();
    let image = with_view(&batch, 0, &thumb);
    let hash = image.hash.clone();
    idx.add_image(&image, 0.6).await.unwrap();

    let (thumb_key, layout_key) =
        (format!("{}facerec:thumb:{hash}", names.prefix), format!("{}facerec:layout:{hash}", names.prefix));
    let stored: Vec<u8> = db0.get(&thumb_key).await.unwrap();
    assert_eq!(stored, thumb);
    let layout: serde_json::Value = serde_json::from_str(&db0.get::<String, _>(&layout_key).await.unwrap()).unwrap();
    assert_eq!((layout["width"].clone(), layout["height"].clone()), (640.into(), 480.into()));
    let boxes = layout["faces"].as_array().unwrap();
    assert_eq!(boxes.len(), image.faces.len());
    assert_eq!(boxes[0]["top"], 0);
    assert_eq!(boxes[0]["right"], 50);
    // Each id is the first 16 hex digits of the SHA-256 of a db 3 member, in face order.
    let members: Vec<Vec<u8>> = db3.smembers(format!("{}{hash}", names.prefix)).await.unwrap();
    for (b, face) in boxes.iter().zip(&image.faces) {
        let id = b["id"].as_str().unwrap();
        assert_eq!(id, hex::encode(&sha2::Sha256::digest(face.to_le_bytes())[..8]));
        assert!(members.iter().any(|m| hex::encode(&sha2::Sha256::digest(m)[..8]) == id));
    }
    // Read through the port.
    assert_eq!(idx.thumbnail(&hash).await.unwrap(), Some(thumb.clone()));
    let record = idx.image(&hash).await.unwrap().unwrap();
    assert!(record.thumbnail);
    assert_eq!(record.layout, image.layout());

    // A thumbnail key of another type (another program's) refuses the image before any of
    // it is written: faces, layout and thumbnail come in one atomic script, or not at all.
    let second = with_view(&batch, 1, &thumb);
    let foreign = format!("{}facerec:thumb:{}", names.prefix, second.hash);
    let _: i64 = db0.hset(&foreign, ("not", "a string")).await.unwrap();
    let err = idx.add_image(&second, 0.6).await.unwrap_err();
    assert!(matches!(err, IndexError::Rejected(_)), "{err}");
    assert!(!db3.exists::<bool, _>(format!("{}{}", names.prefix, second.hash)).await.unwrap(), "faces written");
    assert!(!db0.exists::<bool, _>(format!("{}facerec:layout:{}", names.prefix, second.hash)).await.unwrap());
    let _: i64 = db0.del(&foreign).await.unwrap();

    // Thumbnails off: none stored, the layout still is.
    let third = NewImage { thumbnail: None, ..with_view(&batch, 2, &thumb) };
    idx.add_image(&third, 0.6).await.unwrap();
    assert_eq!(idx.thumbnail(&third.hash).await.unwrap(), None);
    assert!(idx.image(&third.hash).await.unwrap().unwrap().layout.is_some());

    // Erasure takes both keys with it.
    let out = idx.forget(&[hash.clone(), third.hash.clone()]).await.unwrap();
    assert_eq!(out.erased.len(), 2);
    for key in [&thumb_key, &layout_key, &format!("{}facerec:layout:{}", names.prefix, third.hash)] {
        assert!(!db0.exists::<bool, _>(key).await.unwrap(), "{key} left after forget");
    }
    assert_eq!(idx.thumbnail(&hash).await.unwrap(), None);
    let left: Vec<String> = scan_keys(&db0, &format!("{}facerec:thumb:", names.prefix)).await;
    assert!(left.is_empty(), "{left:?}");
    cleanup(&names).await;
}

#[tokio::test]
async fn fsck_reports_and_repairs_a_thumbnail_or_layout_left_without_its_image() {
    let names = Names::new("thumbfsck");
    let batch = Batch::new(2, 1, 8);
    let idx = RedisIndex::connect(names.redis_settings()).await.expect("Redis must be reachable");
    let image = with_view(&batch, 0, b"\xff\xd8\xff jpeg");
    idx.add_image(&image, 0.6).await.unwrap();
    assert!(check(&idx.snapshot().await.unwrap(), 0.6, 1).is_clean());

    // Another program erased an image the old way: its thumbnail and layout stay behind.
    let db0 = redis(0).await;
    let ghost = &batch.recording.images[1].hash;
    let _: () = db0.set(format!("{}facerec:thumb:{ghost}", names.prefix), "jpeg", None, None, false).await.unwrap();
    let _: () = db0
        .set(
            format!("{}facerec:layout:{ghost}", names.prefix),
            r#"{"width":1,"height":1,"faces":[]}"#,
            None,
            None,
            false,
        )
        .await
        .unwrap();
    let snapshot = idx.snapshot().await.unwrap();
    assert!(snapshot.thumbnails.contains(ghost.as_str()) && snapshot.layouts.contains_key(ghost.as_str()));
    let report = check(&snapshot, 0.6, 1);
    assert_eq!(report.violations.keys().copied().collect::<Vec<_>>(), vec![Violation::OrphanView]);
    assert_eq!(report.violations[&Violation::OrphanView].len(), 2);
    idx.apply_fixes(&report.fixes).await.unwrap();
    let after = idx.snapshot().await.unwrap();
    assert!(check(&after, 0.6, 1).is_clean());
    // The stored image kept its own.
    assert!(idx.thumbnail(&image.hash).await.unwrap().is_some());
    cleanup(&names).await;
}
