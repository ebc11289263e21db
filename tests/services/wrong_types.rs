//! Keys of the wrong type written by another program (issue 12, item 4): a valid image is
//! stored whole, an image whose own key is foreign is refused with nothing written, the
//! change-log read skips foreign keys, and no half-stored image is ever linked.

use facerec::adapters::redis_index::RedisIndex;
use facerec::face::Encoding;
use facerec::hash::ImageHash;
use facerec::ports::{FaceIndex, IndexError, NewImage};
use facerec_fakes::testkit::servers::{cleanup, redis, scan_keys};
use facerec_fakes::testkit::{Batch, Names};
use fred::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

async fn index(names: &Names) -> RedisIndex {
    RedisIndex::connect(names.redis_settings()).await.expect("Redis must be reachable (scripts/services.sh)")
}

/// Image `i` of a one-person batch: every image matches every other.
fn image(batch: &Batch, i: usize) -> NewImage {
    let img = &batch.recording.images[i];
    NewImage::bare(img.hash.clone(), img.name.clone(), img.faces.iter().map(|f| f.encoding).collect(), "test")
}

fn hashes(matches: &[facerec::ports::ImageMatch]) -> BTreeSet<String> {
    matches.iter().map(|m| m.hash.as_str().to_owned()).collect()
}

/// Every key under the prefix in databases 0-4, with its type.
async fn snapshot(prefix: &str) -> BTreeSet<(u8, String, String)> {
    let mut out = BTreeSet::new();
    for db in 0..=4u8 {
        let client = redis(db).await;
        for key in scan_keys(&client, prefix).await {
            let kind: String = client.custom(fred::cmd!("TYPE"), vec![key.clone()]).await.unwrap();
            out.insert((db, key, kind));
        }
        let _ = client.quit().await;
    }
    out
}

/// The state no reader may ever see: an image linked in db 4 that has no names, or an
/// image left `pending`.
async fn half_stored(prefix: &str) -> Vec<String> {
    let (db0, db2, db4) = (redis(0).await, redis(2).await, redis(4).await);
    let mut found = Vec::new();
    for key in scan_keys(&db4, prefix).await {
        let kind: String = db4.custom(fred::cmd!("TYPE"), vec![key.clone()]).await.unwrap();
        if kind != "set" {
            continue;
        }
        let members: Vec<String> = db4.smembers(&key).await.unwrap();
        for m in members {
            let named: i64 = db2.exists(format!("{prefix}{m}")).await.unwrap();
            if named == 0 {
                found.push(format!("{} links to nameless {m}", &key[prefix.len()..]));
            }
        }
    }
    for key in scan_keys(&db0, &format!("{prefix}facerec:image:")).await {
        let status: Option<String> = db0.hget(&key, "status").await.unwrap();
        if status.as_deref() != Some("done") {
            found.push(format!("{key} is {status:?}"));
        }
    }
    found
}

#[tokio::test]
async fn a_matching_image_with_a_foreign_db4_key_does_not_stop_a_valid_image() {
    let names = Names::new("wrongtype-a");
    let batch = Batch::new(3, 1, 21);
    let idx = index(&names).await;
    let (first, second, third) = (image(&batch, 0), image(&batch, 1), image(&batch, 2));
    idx.add_image(&first, 0.6).await.unwrap();
    // The attack: another program replaces the first image's db 4 key with a string.
    let db4 = redis(4).await;
    let clobbered = format!("{}{}", names.prefix, first.hash);
    let _: () = db4.set(&clobbered, "not a set", None, None, false).await.unwrap();

    let matches = idx.add_image(&second, 0.6).await.expect("a valid image is stored and acknowledged");
    assert!(matches.is_empty(), "the foreign-typed match is left out: {matches:?}");
    let record = idx.image(&second.hash).await.unwrap().expect("stored");
    assert_eq!(record.names, BTreeSet::from([second.name.clone()]));
    assert_eq!(record.faces.len(), second.faces.len());
    assert_eq!(idx.hash_of(&second.name).await.unwrap(), Some(second.hash.clone()));
    let untouched: String = db4.get(&clobbered).await.unwrap();
    assert_eq!(untouched, "not a set", "the foreign key is left alone");

    // Later images link to every well-typed match.
    let matches = idx.add_image(&third, 0.6).await.unwrap();
    assert_eq!(hashes(&matches), BTreeSet::from([second.hash.as_str().to_owned()]));
    assert!(half_stored(&names.prefix).await.is_empty());
    cleanup(&names).await;
}

#[tokio::test]
async fn an_image_whose_own_key_is_foreign_is_refused_with_nothing_written() {
    let names = Names::new("wrongtype-b");
    let batch = Batch::new(8, 1, 22);
    let idx = index(&names).await;
    idx.add_image(&image(&batch, 0), 0.6).await.unwrap();
    // One attack per key an image's writes touch; each on a new image matching image 0.
    type KeyOf = fn(&NewImage) -> String;
    let attacks: [(u8, KeyOf, &str); 6] = [
        (1, |i| i.name.clone(), "set"),
        (2, |i| i.hash.as_str().to_owned(), "string"),
        (3, |i| i.hash.as_str().to_owned(), "string"),
        (4, |i| i.hash.as_str().to_owned(), "string"),
        (0, |i| format!("facerec:image:{}", i.hash), "string"),
        (0, |i| format!("facerec:dist:{}", i.hash), "string"),
    ];
    for (n, (db, key, kind)) in attacks.into_iter().enumerate() {
        let new = image(&batch, n + 1);
        let key = format!("{}{}", names.prefix, key(&new));
        let client = redis(db).await;
        if kind == "set" {
            let _: i64 = client.sadd(&key, "not a string").await.unwrap();
        } else {
            let _: () = client.set(&key, "not a set", None, None, false).await.unwrap();
        }
        let before = snapshot(&names.prefix).await;
        let err = idx.add_image(&new, 0.6).await.expect_err("an image whose own key is foreign is refused");
        let IndexError::Rejected(reason) = &err else { panic!("db {db} {key}: permanent expected, got {err}") };
        assert!(reason.contains(&key) && reason.contains(&format!("is a {kind}")), "db {db}: reason {reason}");
        assert_eq!(snapshot(&names.prefix).await, before, "db {db} {key}: nothing of the image is written");
        assert!(!idx.is_known(&new.hash).await.unwrap_or(false));
        let _: i64 = client.del(&key).await.unwrap();
        let _ = client.quit().await;
    }
    assert!(half_stored(&names.prefix).await.is_empty());
    cleanup(&names).await;
}

#[tokio::test]
async fn a_foreign_db3_key_in_the_change_log_does_not_stop_later_images() {
    let names = Names::new("wrongtype-c");
    let batch = Batch::new(5, 1, 23);
    let (worker, other) = (index(&names).await, index(&names).await);
    worker.load_cache().await.unwrap();
    // Another worker stores an image (logged after this worker's cursor), then another
    // program replaces its db 3 key with a string.
    let logged = image(&batch, 0);
    other.add_image(&logged, 0.6).await.unwrap();
    let db3 = redis(3).await;
    let _: () = db3.set(format!("{}{}", names.prefix, logged.hash), "not a set", None, None, false).await.unwrap();
    for i in 1..5 {
        let new = image(&batch, i);
        worker.add_image(&new, 0.6).await.unwrap_or_else(|e| panic!("image {i} must be stored: {e}"));
        assert!(worker.is_known(&new.hash).await.unwrap());
    }
    cleanup(&names).await;
}

#[tokio::test]
async fn no_nameless_image_is_ever_linked_after_a_repaired_key() {
    // The review's sequence: a foreign db 4 key, the next matching image, the key repaired,
    // a later image. No image may end up linked without its name.
    let names = Names::new("wrongtype-d");
    let batch = Batch::new(3, 1, 24);
    let idx = index(&names).await;
    idx.add_image(&image(&batch, 0), 0.6).await.unwrap();
    let db4 = redis(4).await;
    let key = format!("{}{}", names.prefix, batch.recording.images[0].hash);
    let _: () = db4.set(&key, "not a set", None, None, false).await.unwrap();
    let _ = idx.add_image(&image(&batch, 1), 0.6).await;
    let _: i64 = db4.del(&key).await.unwrap();
    idx.add_image(&image(&batch, 2), 0.6).await.unwrap();
    assert_eq!(half_stored(&names.prefix).await, Vec::<String>::new());
    cleanup(&names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_refused_after_its_faces_were_stored_is_rolled_back_and_never_linked() {
    // Another program clobbers an image's db 2 key between the script that stores its
    // faces and the one that commits it. A poller on its own connection waits for the
    // `pending` status; a few thousand changes to read widen that window. The attack may
    // miss (the image committed first): then it is tried with the next image.
    let names = Names::new("wrongtype-e");
    let batch = Batch::new(7, 1, 25);
    let worker = index(&names).await;
    worker.load_cache().await.unwrap();
    let (db0, db2, db3) = (redis(0).await, redis(2).await, redis(3).await);
    let mut refused = None;
    for (attempt, i) in (0..6).enumerate() {
        fill_change_log(&names.prefix, attempt, 6000).await;
        let victim = image(&batch, i);
        let status = format!("{}facerec:image:{}", names.prefix, victim.hash);
        let db2_key = format!("{}{}", names.prefix, victim.hash);
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (db0, db2, stop) = (db0.clone(), db2.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let s: Option<String> = db0.hget(&status, "status").await.unwrap();
                    if s.as_deref() == Some("pending") {
                        let _: () = db2.set(&db2_key, "clobbered", None, None, false).await.unwrap();
                        return true;
                    }
                }
                false
            })
        };
        let result = worker.add_image(&victim, 0.6).await;
        stop.store(true, Ordering::Relaxed);
        let landed = poller.await.unwrap();
        if let (true, Err(e)) = (landed, result) {
            assert!(!e.is_transient(), "{e}");
            refused = Some(victim);
            break;
        }
    }
    let victim = refused.expect("the attack landed between the two scripts in one of six tries");
    let faces: i64 = db3.exists(format!("{}{}", names.prefix, victim.hash)).await.unwrap();
    assert_eq!(faces, 0, "the refused image's faces were rolled back");
    // The worker's cache still holds the refused image's faces: the next image matches
    // them, and must not link to it.
    let later = image(&batch, 6);
    let matches = worker.add_image(&later, 0.6).await.unwrap();
    assert!(!hashes(&matches).contains(victim.hash.as_str()), "linked to a refused image: {matches:?}");
    let linked: Vec<String> = redis(4).await.smembers(format!("{}{}", names.prefix, later.hash)).await.unwrap();
    assert!(!linked.contains(&victim.hash.as_str().to_owned()));
    assert_eq!(half_stored(&names.prefix).await, Vec::<String>::new());
    cleanup(&names).await;
}

/// Logs `n` one-face images as another worker would (db 3 faces, change-log entries), far
/// from every batch face, so the next store returns that many changes to read.
async fn fill_change_log(prefix: &str, round: usize, n: usize) {
    let (db0, db3) = (redis(0).await, redis(3).await);
    let (p0, p3) = (db0.pipeline(), db3.pipeline());
    for k in 0..n {
        let hash = ImageHash::parse(&format!("filler{round}-{k}")).unwrap();
        let face = Encoding([5.0 + (round * n + k) as f64 * 1e-6; 128]);
        let _: () = p3.sadd(format!("{prefix}{hash}"), face.to_le_bytes().to_vec()).await.unwrap();
        let _: () =
            p0.xadd(format!("{prefix}facerec:faces"), false, None, "*", vec![("hash", hash.as_str())]).await.unwrap();
    }
    let _: Vec<Value> = p3.all().await.unwrap();
    let _: Vec<Value> = p0.all().await.unwrap();
}
