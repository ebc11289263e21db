//! `facerec forget` against real Redis and RabbitMQ: its audit line reaches the logs
//! exchange (and the erase does not depend on it), and SIGKILLed at random moments while
//! erasing a person by photo it leaves every image fully present or fully absent.

use crate::erase::{command, everything, facerec, index, listen_logs};
use facerec::adapters::recorded_encoder::RecordedImage;
use facerec::face::Encoding;
use facerec::hash::ImageHash;
use facerec::ports::{FaceIndex, NewImage};
use facerec_fakes::testkit::servers::cleanup;
use facerec_fakes::testkit::{Batch, Names};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

async fn store_all(idx: &impl FaceIndex, batch: &Batch) {
    for img in &batch.recording.images {
        let faces: Vec<Encoding> = img.faces.iter().map(|f| f.encoding).collect();
        idx.add_image(&NewImage::bare(img.hash.clone(), &img.name, faces, "test"), 0.6).await.unwrap();
    }
}

#[tokio::test]
async fn the_audit_line_of_an_erase_reaches_the_logs_exchange_as_worker_info() {
    let names = Names::new("forget-audit");
    let batch = Batch::new(6, 3, 61);
    let idx = index(&names).await;
    store_all(&idx, &batch).await;
    let victim = &batch.recording.images[2];
    let mut logs = listen_logs(&names).await;
    let unknown = "0000000000000000000000000000000000000000000000000000000000000000";
    let (out, stdout, stderr) = facerec(&names, &["forget", &victim.name, unknown, "--hostname", "audit-host"]);
    assert!(out.status.success(), "{stdout}{stderr}");
    let expected =
        format!("audit: forget erased 1 images ({} faces, 1 names), 1 unknown: {}", victim.faces.len(), victim.hash);
    assert!(stderr.lines().any(|l| l == expected), "{expected:?} not in {stderr}");
    let (key, line) = tokio::time::timeout(Duration::from_secs(10), logs.recv()).await.expect("no audit line").unwrap();
    assert_eq!((key.as_str(), line.as_str()), ("audit-host.worker.info", expected.as_str()));
    assert!(!stderr.contains("NOT published"), "{stderr}");
    // A dry run erases nothing and publishes nothing.
    let other = &batch.recording.images[3];
    let (out, _, stderr) = facerec(&names, &["forget", &other.name, "--dry-run", "--hostname", "audit-host"]);
    assert!(out.status.success() && !stderr.contains("audit:"), "{stderr}");
    assert!(tokio::time::timeout(Duration::from_secs(2), logs.recv()).await.is_err(), "a dry run was published");
    assert!(idx.image(&other.hash).await.unwrap().is_some());
    cleanup(&names).await;
}

#[tokio::test]
async fn with_the_log_broker_down_the_erase_is_done_and_stderr_says_the_line_was_not_published() {
    let names = Names::new("forget-nobroker");
    let batch = Batch::new(4, 2, 63);
    let idx = index(&names).await;
    store_all(&idx, &batch).await;
    let victim = &batch.recording.images[1];
    let started = Instant::now();
    let out = command(&names, &["forget", victim.hash.as_str()])
        .env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2F")
        .output()
        .unwrap();
    let (took, stderr) = (started.elapsed(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("audit: forget erased 1 images") && stderr.contains("NOT published"), "{stderr}");
    assert!(idx.image(&victim.hash).await.unwrap().is_none(), "not erased");
    assert!(took < Duration::from_secs(8), "waited {took:?} for a broker that is down");
    cleanup(&names).await;
}

/// Per image: fully present (names, faces, linked with every other present image), fully
/// absent (its hash nowhere but in the change log's forget entries), or half (a failure).
async fn census(idx: &impl FaceIndex, names: &Names, batch: &Batch) -> (usize, usize, Vec<String>) {
    let images = &batch.recording.images;
    let mut present = BTreeSet::new();
    for img in images {
        if idx.image(&img.hash).await.unwrap().is_some() {
            present.insert(img.hash.clone());
        }
    }
    let dump = everything(&names.prefix).await;
    let mut half = Vec::new();
    for img in images {
        let h = img.hash.as_str();
        if present.contains(&img.hash) {
            let r = idx.image(&img.hash).await.unwrap().unwrap();
            let linked: BTreeSet<ImageHash> = r.matches.iter().map(|m| m.hash.clone()).collect();
            let others: BTreeSet<ImageHash> = present.iter().filter(|p| *p != &img.hash).cloned().collect();
            let named = idx.hash_of(&img.name).await.unwrap().as_ref() == Some(&img.hash);
            if !(named && r.names.len() == 1 && r.faces.len() == img.faces.len() && linked == others) {
                half.push(format!("{h}: present without all of it: {r:?}"));
            }
        } else {
            let traces: Vec<String> = dump
                .iter()
                .filter(|(_, key, values)| {
                    !key.ends_with("facerec:faces")
                        && (key.contains(h) || key.ends_with(&img.name) || values.iter().any(|v| v == h.as_bytes()))
                })
                .map(|(db, key, _)| format!("db {db} {key}"))
                .collect();
            if !traces.is_empty() {
                half.push(format!("{h}: absent but left {traces:?}"));
            }
        }
    }
    (present.len(), images.len() - present.len(), half)
}

#[tokio::test]
async fn forget_by_face_killed_at_random_moments_leaves_each_image_fully_present_or_absent() {
    const IMAGES: usize = 200;
    const KILLS: usize = 10;
    let names = Names::new("forget-kill");
    let dir = tempfile::tempdir().unwrap();
    // One person in every image (some show them twice), and a photo of them.
    let batch = Batch::new(IMAGES, 1, 65);
    let photo = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR a photo of the person".to_vec();
    let mut recording = batch.recording.clone();
    recording.images.push(RecordedImage {
        hash: ImageHash::of_bytes(&photo),
        name: "photo.png".into(),
        faces: vec![batch.recording.images[1].faces[0].clone()],
        ..batch.recording.images[1].clone()
    });
    let encodings = dir.path().join("encodings.json");
    recording.save(&encodings).unwrap();
    let photo_file = dir.path().join("photo.png");
    std::fs::write(&photo_file, &photo).unwrap();
    let args = ["forget", "--face", photo_file.to_str().unwrap(), "--encodings", encodings.to_str().unwrap()];
    let idx = index(&names).await;
    let fsck_clean = |when: &str| {
        let (out, stdout, stderr) = facerec(&names, &["fsck"]);
        assert!(out.status.success(), "fsck {when}: {stdout}{stderr}");
    };

    // One uninterrupted run: how long the kills are spread over.
    store_all(&idx, &batch).await;
    let started = Instant::now();
    let (out, stdout, stderr) = facerec(&names, &args);
    let whole = started.elapsed();
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("erased {IMAGES} images")), "{stdout}");
    assert_eq!(census(&idx, &names, &batch).await, (0, IMAGES, vec![]));
    fsck_clean("after an uninterrupted run");

    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let (mut before, mut after, mut mixed) = (0, 0, 0);
    let mut delays = Vec::new();
    for round in 0..KILLS {
        store_all(&idx, &batch).await;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Within the run's span, short of its very end (a kill after the exit proves nothing).
        let delay = whole.mul_f64(0.9 * (rng >> 11) as f64 / (1u64 << 53) as f64);
        let mut child = command(&names, &args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let (present, absent, half) = census(&idx, &names, &batch).await;
        assert!(half.is_empty(), "round {round}, killed after {delay:?}: {half:#?}");
        let outcome = match (present, absent) {
            (_, 0) => {
                before += 1;
                "all present"
            }
            (0, _) => {
                after += 1;
                "all absent"
            }
            _ => {
                mixed += 1;
                "some of each"
            }
        };
        let finished = if status.success() { ", had exited" } else { "" };
        delays.push(format!("{}ms: {outcome}{finished}", delay.as_millis()));
        fsck_clean(&format!("after kill {round}"));
        // Run again, to the end: every image of the person goes.
        let (out, stdout, stderr) = facerec(&names, &args);
        assert!(out.status.success(), "re-run after kill {round}: {stdout}{stderr}");
        assert_eq!(census(&idx, &names, &batch).await, (0, IMAGES, vec![]), "after the re-run of round {round}");
        fsck_clean(&format!("after the re-run of round {round}"));
    }
    eprintln!(
        "forget --face over {IMAGES} images, uninterrupted {whole:?}; {KILLS} kills at {delays:?}: \
         {before} left all present, {after} all absent, {mixed} some of each, 0 half-erased"
    );
    cleanup(&names).await;
}
