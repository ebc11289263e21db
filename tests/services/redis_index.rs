//! The Redis index in-process: schema, atomic writes, idempotency, the synced cache.

use facerec::adapters::redis_index::RedisIndex;
use facerec::face::Encoding;
use facerec::hash::ImageHash;
use facerec::ports::{FaceIndex, NewImage};
use facerec_fakes::testkit::servers::{cleanup, dump, redis};
use facerec_fakes::testkit::{Batch, Names};
use fred::prelude::*;
use std::sync::Arc;

async fn index(names: &Names) -> RedisIndex {
    let settings = names.redis_settings();
    RedisIndex::connect(settings).await.expect("Redis must be reachable (scripts/services.sh)")
}

fn new_image(hash: &ImageHash, name: &str, faces: &[Encoding]) -> NewImage {
    NewImage::bare(hash.clone(), name, faces.to_vec(), "test")
}

#[tokio::test]
async fn writes_exactly_the_seed_schema_and_reprocessing_changes_nothing() {
    let names = Names::new("schema");
    let batch = Batch::new(30, 6, 1);
    let idx = index(&names).await;
    for img in &batch.recording.images {
        let faces: Vec<Encoding> = img.faces.iter().map(|f| f.encoding).collect();
        idx.add_image(&new_image(&img.hash, &img.name, &faces), 0.6).await.unwrap();
    }
    let first = dump(&names.prefix).await;
    assert_eq!(first, batch.expected(0.6));
    // A redelivered message is processed again: same state.
    for img in batch.recording.images.iter().take(10) {
        let faces: Vec<Encoding> = img.faces.iter().map(|f| f.encoding).collect();
        idx.add_image(&new_image(&img.hash, &img.name, &faces), 0.6).await.unwrap();
        idx.add_name(&img.hash, &img.name).await.unwrap();
    }
    assert_eq!(dump(&names.prefix).await, first);
    // db 3 values are what numpy.frombuffer(b, '<f8') reads.
    let db3 = redis(3).await;
    let img = &batch.recording.images[0];
    let raw: Vec<Vec<u8>> = db3.smembers(format!("{}{}", names.prefix, img.hash)).await.unwrap();
    assert_eq!(raw[0].len(), 1024);
    let first_value = f64::from_le_bytes(raw[0][..8].try_into().unwrap());
    assert!(img.faces.iter().any(|f| f.encoding.0[0] == first_value));
    cleanup(&names).await;
}

#[tokio::test]
async fn distances_and_fingerprints_are_kept_in_db0() {
    let names = Names::new("dist");
    let batch = Batch::new(6, 2, 2);
    let idx = index(&names).await;
    for img in &batch.recording.images {
        let faces: Vec<Encoding> = img.faces.iter().map(|f| f.encoding).collect();
        idx.add_image(&new_image(&img.hash, &img.name, &faces), 0.6).await.unwrap();
    }
    let img = &batch.recording.images[1];
    let record = idx.image(&img.hash).await.unwrap().unwrap();
    assert_eq!(record.fingerprint.as_deref(), Some("test"));
    assert!(!record.matches.is_empty());
    for m in &record.matches {
        let other = batch.recording.images.iter().find(|i| i.hash == m.hash).unwrap();
        let expected = img
            .faces
            .iter()
            .flat_map(|a| other.faces.iter().map(move |b| a.encoding.distance(&b.encoding)))
            .fold(f64::INFINITY, f64::min);
        assert_eq!(m.distance, expected, "stored distance is the exact smallest face distance");
    }
    assert_eq!(idx.hash_of(&img.name).await.unwrap(), Some(img.hash.clone()));
    cleanup(&names).await;
}

#[tokio::test]
async fn a_new_worker_matches_against_faces_written_by_another_program() {
    // Fill db 3 the way a Python worker following the schema would: no change log.
    let names = Names::new("foreign");
    let batch = Batch::new(8, 2, 3);
    let db3 = redis(3).await;
    for img in &batch.recording.images[..7] {
        let members: Vec<Vec<u8>> = img.faces.iter().map(|f| f.encoding.to_le_bytes().to_vec()).collect();
        let _: i64 = db3.sadd(format!("{}{}", names.prefix, img.hash), members).await.unwrap();
    }
    let idx = index(&names).await;
    idx.load_cache().await.unwrap();
    let faces_written: usize = batch.recording.images[..7].iter().map(|i| i.faces.len()).sum();
    assert_eq!(idx.cached_faces(), faces_written);
    let last = &batch.recording.images[7];
    let faces: Vec<Encoding> = last.faces.iter().map(|f| f.encoding).collect();
    let matches = idx.add_image(&new_image(&last.hash, &last.name, &faces), 0.6).await.unwrap();
    let expected = &batch.expected(0.6)[&(4, last.hash.as_str().to_owned())];
    let got: Vec<String> = {
        let mut v: Vec<String> = matches.iter().map(|m| m.hash.as_str().to_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(&got, expected);
    cleanup(&names).await;
}

#[tokio::test]
async fn workers_racing_on_images_of_one_person_always_link_them() {
    // Two indexes (two workers) add images of the same person at the same moment, many
    // times over: every pair must end up linked both ways.
    let names = Names::new("race");
    let (a, b) = (Arc::new(index(&names).await), Arc::new(index(&names).await));
    a.load_cache().await.unwrap();
    b.load_cache().await.unwrap();
    let batch = Batch::new(40, 1, 4); // one person: everything matches everything
    let mut tasks = Vec::new();
    for (i, img) in batch.recording.images.iter().enumerate() {
        let idx = if i % 2 == 0 { a.clone() } else { b.clone() };
        let faces: Vec<Encoding> = img.faces.iter().map(|f| f.encoding).collect();
        let new = new_image(&img.hash, &img.name, &faces);
        tasks.push(tokio::spawn(async move { idx.add_image(&new, 0.6).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(dump(&names.prefix).await, batch.expected(0.6));
    cleanup(&names).await;
}

#[tokio::test]
async fn a_key_of_the_wrong_type_is_a_permanent_error() {
    let names = Names::new("wrongtype");
    let db3 = redis(3).await;
    let hash = ImageHash::parse("clobbered").unwrap();
    let _: () = db3.set(format!("{}{}", names.prefix, hash), "not a set", None, None, false).await.unwrap();
    let idx = index(&names).await;
    let faces = vec![Encoding([0.1; 128])];
    let err = idx.add_image(&new_image(&hash, "x.jpg", &faces), 0.6).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(!idx.is_known(&hash).await.unwrap());
    cleanup(&names).await;
}

#[tokio::test]
async fn a_failure_is_recorded_in_db0_with_an_expiry_and_the_seed_databases_are_untouched() {
    let names = Names::new("failed");
    let idx = index(&names).await;
    let hash = ImageHash::of_bytes(b"a dead letter");
    assert_eq!(idx.failure(&hash).await.unwrap(), None);
    let before = dump(&names.prefix).await;
    idx.record_failure(&hash, "not a decodable image: truncated").await.unwrap();
    let failure = idx.failure(&hash).await.unwrap().expect("recorded");
    assert_eq!(failure.reason, "not a decodable image: truncated");
    assert!(failure.at > 1_600_000_000);
    assert_eq!(dump(&names.prefix).await, before, "databases 1-4 unchanged");
    let db0 = redis(0).await;
    let key = format!("{}facerec:failed:{hash}", names.prefix);
    let ttl: i64 = db0.ttl(&key).await.unwrap();
    assert!(ttl > 29 * 24 * 3600, "expires in 30 days, ttl {ttl}");
    cleanup(&names).await;
}

#[tokio::test]
async fn recent_images_are_newest_first_in_pages_and_erased_ones_drop_out() {
    let names = Names::new("recent");
    let batch = Batch::new(5, 2, 3);
    let idx = index(&names).await;
    for img in &batch.recording.images {
        let faces: Vec<Encoding> = img.faces.iter().map(|f| f.encoding).collect();
        idx.add_image(&new_image(&img.hash, &img.name, &faces), 0.6).await.unwrap();
    }
    let newest_first: Vec<ImageHash> = batch.recording.images.iter().rev().map(|i| i.hash.clone()).collect();
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let page = idx.recent(2, cursor).await.unwrap();
        assert!(page.hashes.len() <= 2);
        seen.extend(page.hashes);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    idx.forget(std::slice::from_ref(&newest_first[0])).await.unwrap();
    assert_eq!(idx.recent(10, None).await.unwrap().hashes, newest_first[1..].to_vec());
    assert!(idx.recent(10, Some("nonsense".into())).await.is_err());
    cleanup(&names).await;
}

#[tokio::test]
async fn match_names_is_every_name_of_every_linked_image_and_skips_foreign_keys() {
    let names = Names::new("matchnames");
    let batch = Batch::new(12, 3, 5);
    let idx = index(&names).await;
    for img in &batch.recording.images {
        let faces: Vec<Encoding> = img.faces.iter().map(|f| f.encoding).collect();
        idx.add_image(&new_image(&img.hash, &img.name, &faces), 0.6).await.unwrap();
    }
    // A second name on one image: every name counts, not just the first.
    let second = &batch.recording.images[1];
    idx.add_name(&second.hash, "second name.jpg").await.unwrap();
    let state = dump(&names.prefix).await;
    let db = |n: u8, key: &str| state.get(&(n, key.to_owned())).cloned().unwrap_or_default();
    let mut linked_somewhere = 0;
    for img in &batch.recording.images {
        let expected: std::collections::BTreeSet<String> =
            db(4, img.hash.as_str()).iter().flat_map(|other| db(2, other)).collect();
        linked_somewhere += usize::from(!expected.is_empty());
        assert_eq!(idx.match_names(&img.hash).await.unwrap(), expected, "{}", img.name);
    }
    assert!(linked_somewhere >= 6, "the batch must link images for this test to mean anything");
    let unknown = ImageHash::of_bytes(b"never stored");
    assert!(idx.match_names(&unknown).await.unwrap().is_empty());

    // Another program's key of the wrong type (db 2 of a linked image) is skipped, not a 5xx.
    let linked = &db(4, batch.recording.images[0].hash.as_str())[0];
    let db2 = redis(2).await;
    let key = format!("{}{}", names.prefix, linked);
    let _: () = db2.del(&key).await.unwrap();
    let _: () = db2.set(&key, "not a set", None, None, false).await.unwrap();
    let first = batch.recording.images[0].hash.as_str();
    let expected: std::collections::BTreeSet<String> =
        db(4, first).iter().filter(|o| *o != linked).flat_map(|o| db(2, o)).collect();
    assert_eq!(idx.match_names(&batch.recording.images[0].hash).await.unwrap(), expected);
    cleanup(&names).await;
}
