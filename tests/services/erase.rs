//! Erasure against real Redis: an erased image is gone from every key of every database,
//! from other indexes' caches, and a commit racing the erase does not bring it back.

use facerec::adapters::redis_index::{RedisIndex, RedisSettings};
use facerec::config::ServiceUrl;
use facerec::face::Encoding;
use facerec::hash::ImageHash;
use facerec::ports::{FaceIndex, NewImage};
use facerec_fakes::testkit::servers::{cleanup, dump, redis, redis_url, scan_keys};
use facerec_fakes::testkit::{Batch, Names};
use fred::prelude::*;
use std::collections::BTreeMap;

pub(crate) async fn index(names: &Names) -> RedisIndex {
    let url = ServiceUrl::parse("REDIS_URL", &redis_url(), &["redis", "rediss"]).unwrap();
    let settings = RedisSettings { url, key_prefix: names.prefix.clone(), ..RedisSettings::default() };
    RedisIndex::connect(settings).await.expect("Redis must be reachable (scripts/services.sh)")
}

fn faces_of(batch: &Batch, i: usize) -> Vec<Encoding> {
    batch.recording.images[i].faces.iter().map(|f| f.encoding).collect()
}

fn new_image(hash: &ImageHash, name: &str, faces: &[Encoding]) -> NewImage {
    NewImage::bare(hash.clone(), name, faces.to_vec(), "test")
}

/// Every key under `prefix` in databases 0-4 with every byte string it holds (names,
/// members, fields, values, stream fields), whatever its type.
pub(crate) async fn everything(prefix: &str) -> Vec<(u8, String, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for db in 0..=4u8 {
        let client = redis(db).await;
        for key in scan_keys(&client, prefix).await {
            let kind: String = client.custom(fred::cmd!("TYPE"), vec![key.clone()]).await.unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![client.get(&key).await.unwrap()],
                "set" => client.smembers(&key).await.unwrap(),
                "hash" => client.custom(fred::cmd!("HGETALL"), vec![key.clone()]).await.unwrap(),
                "stream" => {
                    let entries: Vec<(String, Vec<Vec<u8>>)> =
                        client.custom(fred::cmd!("XRANGE"), vec![key.clone(), "-".into(), "+".into()]).await.unwrap();
                    entries.into_iter().flat_map(|(_, fields)| fields).collect()
                }
                other => panic!("unexpected key type {other} at {key}"),
            };
            out.push((db, key, values));
        }
        let _ = client.quit().await;
    }
    out
}

/// Where `needle` still appears: keys naming it, values holding it. The change log's own
/// forget entries (`hash=<h> op=forget`) are expected and left out.
pub(crate) async fn traces(prefix: &str, needle: &[u8]) -> Vec<String> {
    let found = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let mut out = Vec::new();
    for (db, key, values) in everything(prefix).await {
        if found(key.as_bytes()) {
            out.push(format!("db {db} key {key}"));
        }
        if key.ends_with("facerec:faces") {
            // Stream fields come flat: hash, h, [op, forget].
            let text: Vec<String> = values.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect();
            let mut i = 0;
            while i < text.len() {
                let forget =
                    text.get(i + 2).is_some_and(|f| f == "op") && text.get(i + 3).is_some_and(|v| v == "forget");
                if !forget && found(values[i + 1].as_slice()) {
                    out.push(format!("db {db} change log entry {:?}", &text[i..i + 2]));
                }
                i += if forget { 4 } else { 2 };
            }
            continue;
        }
        for v in values.iter().filter(|v| found(v)) {
            out.push(format!("db {db} key {key} value {}", String::from_utf8_lossy(v)));
        }
    }
    out
}

/// The expected databases without `victim`: its keys and its hash in other images' sets.
fn without(expected: BTreeMap<(u8, String), Vec<String>>, victim: &str) -> BTreeMap<(u8, String), Vec<String>> {
    expected
        .into_iter()
        .filter(|((_, key), values)| key != victim && !values.iter().all(|v| v == victim))
        .map(|(k, values)| (k, values.into_iter().filter(|v| v != victim).collect::<Vec<_>>()))
        .filter(|(_, values)| !values.is_empty())
        .collect()
}

#[tokio::test]
async fn an_erased_image_leaves_no_trace_and_no_cache_matches_it() {
    let names = Names::new("erase");
    let batch = Batch::new(30, 6, 41);
    let (a, b) = (index(&names).await, index(&names).await);
    for img in &batch.recording.images {
        let faces: Vec<Encoding> = img.faces.iter().map(|f| f.encoding).collect();
        a.add_image(&new_image(&img.hash, &img.name, &faces), 0.6).await.unwrap();
    }
    // The second index (another worker) holds every face before the erase.
    b.load_cache().await.unwrap();
    let victim = batch.recording.images[3].hash.clone();
    let victim_name = batch.recording.images[3].name.clone();
    let before = a.image(&victim).await.unwrap().unwrap();
    assert!(!before.matches.is_empty(), "the victim must be linked to others for this test");
    a.add_name(&victim, "second-name.jpg").await.unwrap();

    let unknown = ImageHash::parse("never-stored").unwrap();
    let out = a.forget(&[victim.clone(), unknown.clone()]).await.unwrap();
    assert_eq!(out.unknown, vec![unknown]);
    assert_eq!(out.erased.len(), 1);
    let erased = &out.erased[0];
    assert_eq!((erased.faces, erased.matches), (before.faces.len(), before.matches.len()));
    assert_eq!(erased.names.iter().cloned().collect::<Vec<_>>(), vec![victim_name.clone(), "second-name.jpg".into()]);

    let traces_left = traces(&names.prefix, victim.as_str().as_bytes()).await;
    assert!(traces_left.is_empty(), "{traces_left:#?}");
    for face in &before.faces {
        let left = traces(&names.prefix, &face.to_le_bytes()).await;
        assert!(left.is_empty(), "encoding bytes left: {left:?}");
    }
    assert!(traces(&names.prefix, victim_name.as_bytes()).await.is_empty());
    // Databases 1-4 are exactly what the batch without the victim gives.
    let mut expected = without(batch.expected(0.6), victim.as_str());
    expected.retain(|(_, key), _| key != &victim_name);
    assert_eq!(dump(&names.prefix).await, expected);

    // Idempotent: again, nothing to do and nothing written.
    let again = a.forget(std::slice::from_ref(&victim)).await.unwrap();
    assert!(again.erased.is_empty() && again.unknown == vec![victim.clone()]);

    // A new image of the same face, stored through the *other* index: never matched with
    // the erased image, though that index had its faces cached before the erase.
    let clone = ImageHash::parse("clone-of-victim").unwrap();
    let matches = b.add_image(&new_image(&clone, "clone.jpg", &before.faces), 0.6).await.unwrap();
    assert!(!matches.is_empty());
    assert!(matches.iter().all(|m| m.hash != victim), "{matches:?}");
    assert!(b.find_faces(&before.faces, 0.6).await.unwrap().iter().all(|m| m.hash != victim));
    assert!(traces(&names.prefix, victim.as_str().as_bytes()).await.is_empty());
    cleanup(&names).await;
}

#[tokio::test]
async fn an_erase_racing_the_same_images_store_leaves_it_fully_present_or_fully_absent() {
    let names = Names::new("erase-race");
    let batch = Batch::new(10, 3, 43);
    let idx = index(&names).await;
    for i in 1..batch.recording.images.len() {
        let img = &batch.recording.images[i];
        idx.add_image(&new_image(&img.hash, &img.name, &faces_of(&batch, i)), 0.6).await.unwrap();
    }
    let eraser = index(&names).await;
    let target = &batch.recording.images[0];
    let faces = faces_of(&batch, 0);
    let (mut present, mut absent, mut refused) = (0, 0, 0);
    for round in 0..40u64 {
        let image = new_image(&target.hash, &target.name, &faces);
        let add = idx.add_image(&image, 0.6);
        let erase = async {
            tokio::time::sleep(std::time::Duration::from_micros(round * 75)).await;
            eraser.forget(std::slice::from_ref(&target.hash)).await.unwrap()
        };
        let (added, _) = tokio::join!(add, erase);
        // Erased between storing and committing: refused as transient (the message would
        // be retried and the image stored again, fully).
        if let Err(e) = added {
            assert!(e.is_transient(), "{e}");
            refused += 1;
        }
        let keys: Vec<String> = everything(&names.prefix)
            .await
            .into_iter()
            .filter(|(_, key, values)| {
                !key.ends_with("facerec:faces")
                    && (key.contains(target.hash.as_str())
                        || values.iter().any(|v| v == target.hash.as_str().as_bytes()))
            })
            .map(|(db, key, _)| format!("{db}:{}", &key[names.prefix.len()..]))
            .collect();
        let record = idx.image(&target.hash).await.unwrap();
        match record {
            // Fully present: names, faces and matches both ways, its db 0 record.
            Some(r) if !r.names.is_empty() && r.faces.len() == faces.len() && !r.matches.is_empty() => present += 1,
            None if keys.is_empty() && idx.hash_of(&target.name).await.unwrap().is_none() => absent += 1,
            other => panic!("round {round}: half-present image {other:?}, keys {keys:?}"),
        }
        eraser.forget(std::slice::from_ref(&target.hash)).await.unwrap();
    }
    eprintln!("race rounds: {present} ended present, {absent} absent, {refused} commits refused");
    assert!(refused > 0, "no round erased in the middle of a store");
    cleanup(&names).await;
}

/// Every (routing key, line) published on the test's logs exchange.
pub(crate) async fn listen_logs(names: &Names) -> tokio::sync::mpsc::UnboundedReceiver<(String, String)> {
    use futures::StreamExt as _;
    use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let conn = facerec_fakes::testkit::servers::rabbit().await;
    facerec::adapters::amqp::topology::ensure_exchange(&conn, &names.logs, lapin::ExchangeKind::Topic, false)
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let exclusive = QueueDeclareOptions { exclusive: true, ..Default::default() };
    let q = ch.queue_declare("".into(), exclusive, FieldTable::default()).await.unwrap();
    let (queue, logs) = (q.name().clone(), names.logs.as_str());
    ch.queue_bind(queue.clone(), logs.into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let mut consumer = ch.basic_consume(queue, "erase".into(), no_ack, FieldTable::default()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _conn = conn;
        while let Some(Ok(d)) = consumer.next().await {
            let _ = tx.send((d.routing_key.to_string(), String::from_utf8_lossy(&d.data).into_owned()));
        }
    });
    rx
}

/// `facerec` with the test's prefix and logs exchange; returns (stdout, stderr).
pub(crate) fn facerec(names: &Names, args: &[&str]) -> (std::process::Output, String, String) {
    let out = command(names, args).output().expect("running facerec");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    (out, stdout, stderr)
}

/// The `facerec` command with the test's Redis key prefix, broker and logs exchange.
pub(crate) fn command(names: &Names, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(crate::FACEREC);
    command
        .args(args)
        .args(["--redis-key-prefix", &names.prefix])
        .env("REDIS_URL", redis_url())
        .env("RABBITMQ_URL", facerec_fakes::testkit::servers::amqp_url())
        .env("FACEREC_LOGS_EXCHANGE", &names.logs);
    command
}

#[tokio::test]
async fn with_two_workers_running_an_erased_image_is_never_matched_again() {
    use facerec::adapters::recorded_encoder::RecordedImage;
    use facerec_fakes::testkit::servers::{publish, stored};
    use facerec_fakes::testkit::{Worker, message, wait_until};
    use std::time::Duration;

    let names = Names::new("erase-2w");
    let dir = tempfile::tempdir().unwrap();
    let mut batch = Batch::new(30, 6, 45);
    let victim = batch.recording.images[4].clone();
    let first = batch.messages();
    // Images published after the erase: the victim's faces under new hashes.
    let clones: Vec<RecordedImage> = (0..6)
        .map(|i| RecordedImage {
            hash: ImageHash::parse(&format!("clone-{i}")).unwrap(),
            name: format!("clone-{i}.jpg"),
            ..victim.clone()
        })
        .collect();
    batch.recording.images.extend(clones.iter().cloned());
    let file = batch.save(dir.path()).display().to_string();
    publish(&names, &first).await;
    let worker = |host: &str| {
        let a = ["--encodings", &file, "--recorded-delay-ms", "5", "--http-addr", "off", "--hostname", host];
        Worker::spawn(crate::FACEREC, &names, &a, dir.path())
    };
    let mut logs = listen_logs(&names).await;
    let (w1, w2) = (worker("w1"), worker("w2"));
    wait_until("30 stored", Duration::from_secs(60), || async { stored(&names).await == 30 }).await;

    // Dry run: says what, erases nothing.
    let (out, stdout, _) = facerec(&names, &["forget", &victim.name, "--dry-run"]);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("would erase 1 images") && stdout.contains(victim.hash.as_str()), "{stdout}");
    assert_eq!(stored(&names).await, 30);

    let (out, stdout, stderr) = facerec(&names, &["forget", &victim.name, "--json"]);
    assert!(out.status.success(), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["result"]["erased"][0]["hash"], victim.hash.as_str());
    assert_eq!(report["result"]["erased"][0]["faces"], victim.faces.len());
    assert!(stderr.contains("audit: forget erased 1 images") && stderr.contains(victim.hash.as_str()), "{stderr}");
    assert!(!stderr.contains(&victim.name), "the audit line carries hashes and counts only: {stderr}");
    // Again: idempotent, reported as already absent.
    let (out, stdout, _) = facerec(&names, &["forget", victim.hash.as_str()]);
    assert!(out.status.success() && stdout.contains("1 already absent"), "{stdout}");

    let bodies: Vec<Vec<u8>> = clones.iter().map(|c| message(c.hash.as_str(), &c.name)).collect();
    publish(&names, &bodies).await;
    wait_until("clones stored", Duration::from_secs(60), || async { stored(&names).await == 35 }).await;
    let probe = index(&names).await;
    for c in &clones {
        let r = probe.image(&c.hash).await.unwrap().unwrap();
        assert!(!r.matches.is_empty(), "a clone matches the victim's other images");
        assert!(r.matches.iter().all(|m| m.hash != victim.hash), "{} matched the erased image", c.hash);
    }
    let left = traces(&names.prefix, victim.hash.as_str().as_bytes()).await;
    assert!(left.is_empty(), "{left:#?}");
    // Both workers stored some of the clones, so both caches were checked.
    let mut took = std::collections::BTreeSet::new();
    while let Ok(Some((key, line))) = tokio::time::timeout(Duration::from_secs(2), logs.recv()).await {
        if key.ends_with(".worker.info") && clones.iter().any(|c| line.starts_with(c.hash.as_str())) {
            took.insert(key);
        }
    }
    assert_eq!(took.len(), 2, "clones went to {took:?} only");
    let (out, stdout, _) = facerec(&names, &["fsck"]);
    assert!(out.status.success(), "fsck after the erase: {stdout}");
    assert!(w1.terminate(Duration::from_secs(20)).success());
    assert!(w2.terminate(Duration::from_secs(20)).success());
    cleanup(&names).await;
}

#[tokio::test]
async fn fsck_finds_planted_damage_and_repair_fixes_it() {
    let names = Names::new("fsck");
    let batch = Batch::new(20, 4, 47);
    let idx = index(&names).await;
    for (i, img) in batch.recording.images.iter().enumerate() {
        idx.add_image(&new_image(&img.hash, &img.name, &faces_of(&batch, i)), 0.6).await.unwrap();
    }
    let (out, stdout, _) = facerec(&names, &["fsck"]);
    assert!(out.status.success(), "healthy: {stdout}");
    let p = &names.prefix;
    let (a, b) = (batch.recording.images[0].hash.as_str(), batch.recording.images[1].hash.as_str());
    let (db1, db4, db0) = (redis(1).await, redis(4).await, redis(0).await);
    let _: () = db1.set(format!("{p}ghost.jpg"), a, None, None, false).await.unwrap();
    let _: i64 = db4.sadd(format!("{p}{a}"), b).await.unwrap();
    let _: i64 = db4.sadd(format!("{p}{b}"), b).await.unwrap();
    let _: i64 = db0.hset(format!("{p}facerec:image:erased-long-ago"), ("faces", "1")).await.unwrap();
    let (out, stdout, _) = facerec(&names, &["fsck"]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for kind in ["DanglingName: 1", "SelfLink: 1", "RecordMismatch: 1"] {
        assert!(stdout.contains(kind), "{kind} not in {stdout}");
    }
    let (out, stdout, _) = facerec(&names, &["fsck", "--repair"]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("applied"), "{stdout}");
    let (out, stdout, _) = facerec(&names, &["fsck"]);
    assert!(out.status.success(), "after repair: {stdout}");
    assert_eq!(dump(&names.prefix).await, batch.expected(0.6));
    cleanup(&names).await;
}
