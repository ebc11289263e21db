//! `facerec reindex` against real Redis: stricter and back restores db 4 and the stored
//! distances byte for byte (compared with fresh runs at each tolerance), the recorded
//! tolerance becomes fsck's default, and running workers at another tolerance stop it
//! unless `--force`.

use crate::FACEREC;
use crate::erase::index;
use facerec::face::{ENCODING_DIMS, Encoding};
use facerec::hash::ImageHash;
use facerec::ports::{FaceIndex, NewImage};
use facerec_fakes::testkit::fixtures::recorded_encodings_path;
use facerec_fakes::testkit::servers::{cleanup, redis, redis_url, scan_keys};
use facerec_fakes::testkit::{Names, Worker, wait_until};
use fred::prelude::*;
use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

/// `groups` people of `per_group` images each: every face 0.33-0.43 from its person's
/// centre in a random direction, so faces of one person are about 0.45-0.62 apart; every
/// fifth image also shows the next person. Rounded through f32, as dlib's encodings are.
fn images(groups: usize, per_group: usize, seed: u64) -> Vec<(ImageHash, Vec<Encoding>)> {
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut face = |g: usize| {
        let direction: Vec<f64> = (0..ENCODING_DIMS).map(|_| next() - 0.5).collect();
        let norm = direction.iter().map(|x| x * x).sum::<f64>().sqrt();
        let radius = 0.33 + 0.1 * next();
        let mut v = [0.0; ENCODING_DIMS];
        for (i, x) in v.iter_mut().enumerate() {
            let centre = if i == g { 3.0 } else { 0.0 };
            *x = f64::from((centre + direction[i] / norm * radius) as f32);
        }
        Encoding(v)
    };
    let mut out = Vec::new();
    for g in 0..groups {
        for k in 0..per_group {
            let mut faces = vec![face(g)];
            if (g * per_group + k) % 5 == 0 {
                faces.push(face((g + 1) % groups));
            }
            out.push((ImageHash::parse(&format!("reindex{seed}-{g}-{k}")).unwrap(), faces));
        }
    }
    out
}

/// Stores every image through the index, as a worker at `tolerance` would.
async fn fresh_run(names: &Names, images: &[(ImageHash, Vec<Encoding>)], tolerance: f64) {
    let index = index(names).await;
    for (hash, faces) in images {
        let image = NewImage::bare(hash.clone(), format!("{hash}.jpg"), faces.clone(), "test");
        index.add_image(&image, tolerance).await.unwrap();
    }
    index.close().await;
}

/// db 4 and every `facerec:dist:` hash under the prefix, keys without it; members, fields
/// and values exactly as stored (UTF-8, which facerec writes, or the test fails).
async fn links_and_distances(prefix: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let utf8 = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8");
    let mut out = BTreeMap::new();
    let db4 = redis(4).await;
    for key in scan_keys(&db4, prefix).await {
        let members: Vec<Vec<u8>> = db4.smembers(&key).await.unwrap();
        out.insert(
            format!("db4 {}", &key[prefix.len()..]),
            members.into_iter().map(|m| (utf8(m), String::new())).collect(),
        );
    }
    let db0 = redis(0).await;
    for key in scan_keys(&db0, &format!("{prefix}facerec:dist:")).await {
        let flat: Vec<Vec<u8>> = db0.custom(fred::cmd!("HGETALL"), vec![key.clone()]).await.unwrap();
        let fields = flat.chunks_exact(2).map(|kv| (utf8(kv[0].clone()), utf8(kv[1].clone()))).collect();
        out.insert(format!("db0 {}", &key[prefix.len()..]), fields);
    }
    let _ = (db4.quit().await, db0.quit().await);
    out
}

fn facerec(names: &Names, args: &[&str]) -> Output {
    std::process::Command::new(FACEREC)
        .args(args)
        .args(["--redis-key-prefix", &names.prefix])
        .env("REDIS_URL", redis_url())
        .env_remove("FACEREC_TOLERANCE")
        .output()
        .expect("running facerec")
}

/// Runs `facerec reindex --json` and returns its JSON report.
fn reindex(names: &Names, tolerance: &str) -> serde_json::Value {
    let out = facerec(names, &["reindex", "--tolerance", tolerance, "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "reindex {tolerance} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

async fn recorded(names: &Names) -> Option<String> {
    let db0 = redis(0).await;
    let value: Option<String> = db0.get(format!("{}facerec:tolerance", names.prefix)).await.unwrap();
    let _ = db0.quit().await;
    value
}

#[tokio::test]
async fn reindex_to_stricter_and_back_restores_exactly_what_fresh_runs_store() {
    let images = images(6, 6, 7);
    // The test means something only with pairs on both sides of 0.5 below 0.6.
    let nearest = |a: &[Encoding], b: &[Encoding]| {
        a.iter().flat_map(|x| b.iter().map(move |y| x.distance(y))).fold(f64::INFINITY, f64::min)
    };
    let mut between = 0;
    let mut within = 0;
    for (i, (_, a)) in images.iter().enumerate() {
        for (_, b) in &images[i + 1..] {
            let d = nearest(a, b);
            within += usize::from(d <= 0.5);
            between += usize::from(d > 0.5 && d <= 0.6);
        }
    }
    assert!(between >= 10 && within >= 10, "{between} pairs in (0.5, 0.6], {within} within 0.5");

    let (names, at_06, at_05) = (Names::new("reindex"), Names::new("reindex-06"), Names::new("reindex-05"));
    fresh_run(&names, &images, 0.6).await;
    fresh_run(&at_06, &images, 0.6).await;
    fresh_run(&at_05, &images, 0.5).await;
    let (want_06, want_05) = (links_and_distances(&at_06.prefix).await, links_and_distances(&at_05.prefix).await);
    assert_ne!(want_06, want_05);

    // Nothing recorded yet: the kernel, and nothing to change.
    let first = reindex(&names, "0.6");
    assert_eq!((first["method"].as_str(), first["images_changed"].as_u64()), (Some("kernel"), Some(0)), "{first}");
    assert_eq!(links_and_distances(&names.prefix).await, want_06);
    assert_eq!(recorded(&names).await.as_deref(), Some("0.6"));

    let stricter = reindex(&names, "0.5");
    assert_eq!(stricter["method"].as_str(), Some("filter"), "{stricter}");
    assert_eq!(stricter["previous"].as_f64(), Some(0.6));
    assert_eq!(links_and_distances(&names.prefix).await, want_05);
    assert_eq!(recorded(&names).await.as_deref(), Some("0.5"));
    // fsck's default is the recorded tolerance: clean at 0.5, broken if checked at 0.6.
    let fsck = facerec(&names, &["fsck"]);
    assert!(fsck.status.success(), "fsck: {}", String::from_utf8_lossy(&fsck.stdout));
    assert!(!facerec(&names, &["fsck", "--tolerance", "0.6"]).status.success());

    let looser = reindex(&names, "0.6");
    assert_eq!(looser["method"].as_str(), Some("kernel"), "{looser}");
    assert_eq!(links_and_distances(&names.prefix).await, want_06);
    let members: usize = want_06.iter().filter(|(k, _)| k.starts_with("db4")).map(|(_, v)| v.len()).sum();
    assert_eq!(looser["pairs"].as_u64(), Some(members as u64 / 2));
    assert!(facerec(&names, &["fsck"]).status.success());

    for n in [&names, &at_06, &at_05] {
        cleanup(n).await;
    }
}

#[tokio::test]
async fn reindex_refuses_while_a_worker_runs_at_another_tolerance_unless_forced() {
    let names = Names::new("reindex-workers");
    let dir = tempfile::tempdir().unwrap();
    fresh_run(&names, &images(2, 4, 11), 0.6).await;
    let registry = format!("{}facerec:workers", names.prefix);
    let db0 = redis(0).await;
    // A worker that died 30 s ago without a clean stop does not count.
    let _: i64 = db0.hset(&registry, ("died-host", r#"{"tolerance":0.7,"expires":1}"#)).await.unwrap();
    let out = facerec(&names, &["reindex", "--tolerance", "0.6"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let encodings = recorded_encodings_path().display().to_string();
    let extra = ["--encodings", &encodings, "--http-addr", "off", "--hostname", "other-host", "--tolerance", "0.55"];
    let worker = Worker::spawn(FACEREC, &names, &extra, dir.path());
    wait_until("the worker registered", Duration::from_secs(30), || async {
        db0.hexists::<bool, _, _>(&registry, "other-host").await.unwrap()
    })
    .await;
    assert!(
        !db0.hexists::<bool, _, _>(&registry, "died-host").await.unwrap(),
        "expired entries are dropped at registration"
    );
    // Started while 0.6 is recorded: it says so, and keeps its 0.55.
    wait_until("the worker's error about the recorded tolerance", Duration::from_secs(10), || async {
        worker.logs().contains("recorded=0.6")
    })
    .await;
    let before = links_and_distances(&names.prefix).await;

    let refused = facerec(&names, &["reindex", "--tolerance", "0.5"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("other-host at 0.55") && stderr.contains("--force"), "{stderr}");
    assert_eq!(links_and_distances(&names.prefix).await, before, "a refused reindex writes nothing");
    assert_eq!(recorded(&names).await.as_deref(), Some("0.6"));

    let forced = facerec(&names, &["reindex", "--tolerance", "0.5", "--force"]);
    let stdout = String::from_utf8_lossy(&forced.stdout);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert!(stdout.contains("other-host runs at tolerance 0.55"), "{stdout}");
    assert_eq!(recorded(&names).await.as_deref(), Some("0.5"));
    // The worker keeps its own tolerance and says so again at its next heartbeat.
    wait_until("the worker's error about the new recorded tolerance", Duration::from_secs(15), || async {
        worker.logs().contains("recorded=0.5")
    })
    .await;
    assert!(worker.logs().contains("another tolerance than this worker's"), "{}", worker.logs());

    assert!(worker.terminate(Duration::from_secs(20)).success());
    assert!(!db0.hexists::<bool, _, _>(&registry, "other-host").await.unwrap(), "a clean stop unregisters");
    let _ = db0.quit().await;
    cleanup(&names).await;
}
