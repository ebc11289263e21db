//! The `facerec worker` binary against real servers: end to end, duplicates, poison,
//! SIGKILL mid-batch, two workers, graceful stop, logs, health and metrics.

use crate::FACEREC;
use facerec::adapters::amqp::{REASON_HEADER, text_headers};
use facerec_fakes::testkit::fixtures::recorded_encodings_path;
use facerec_fakes::testkit::servers::{cleanup, dump, publish, publish_with, queue_len, rabbit, redis, stored};
use facerec_fakes::testkit::{Batch, Names, Worker, message, wait_until};
use fred::prelude::*;
use futures::StreamExt as _;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use std::time::Duration;

fn recorded_args(delay_ms: u64) -> Vec<String> {
    vec![
        "--encodings".into(),
        recorded_encodings_path().display().to_string(),
        "--recorded-delay-ms".into(),
        delay_ms.to_string(),
        "--http-addr".into(),
        "off".into(),
        "--hostname".into(),
        "test-host".into(),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Collects every line published on the test's logs exchange.
async fn listen_logs(names: &Names) -> tokio::sync::mpsc::UnboundedReceiver<(String, String)> {
    let conn = rabbit().await;
    facerec::adapters::amqp::topology::ensure_exchange(&conn, &names.logs, lapin::ExchangeKind::Topic, false)
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare("".into(), QueueDeclareOptions { exclusive: true, ..Default::default() }, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        q.name().clone(),
        names.logs.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut consumer = ch
        .basic_consume(
            q.name().clone(),
            "t".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _conn = conn;
        while let Some(Ok(d)) = consumer.next().await {
            let _ = tx.send((d.routing_key.to_string(), String::from_utf8_lossy(&d.data).into_owned()));
        }
    });
    rx
}

#[tokio::test]
async fn a_batch_lands_in_redis_exactly_as_computed_and_logs_use_the_seed_keys() {
    let names = Names::new("e2e");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(40, 8, 10);
    let mut logs = listen_logs(&names).await;
    publish(&names, &batch.messages()).await;
    let mut a = recorded_args(0);
    a[1] = batch.save(dir.path()).display().to_string();
    let worker = Worker::spawn(FACEREC, &names, &args(&a), dir.path());
    wait_until("40 images stored", Duration::from_secs(60), || async { stored(&names).await == 40 }).await;
    assert_eq!(dump(&names.prefix).await, batch.expected(0.6), "{}", worker.logs());
    assert_eq!(queue_len(&names.queue).await, 0);
    assert_eq!(queue_len(&names.dead).await, 0);
    assert!(worker.terminate(Duration::from_secs(20)).success());

    let mut lines = Vec::new();
    while let Ok(Some(l)) = tokio::time::timeout(Duration::from_secs(2), logs.recv()).await {
        lines.push(l);
    }
    let infos: Vec<&(String, String)> = lines.iter().filter(|(k, _)| k == "test-host.worker.info").collect();
    assert_eq!(infos.len(), 40, "one info line per image after its write");
    assert!(lines.iter().any(|(k, _)| k == "test-host.worker.debug"));
    assert!(lines.iter().all(|(k, _)| k.starts_with("test-host.worker.")));
    let first = &batch.recording.images[0];
    let line = infos.iter().find(|(_, l)| l.starts_with(first.hash.as_str())).expect("info line of the first image");
    assert!(line.1.contains(&first.name) && line.1.contains("faces"), "{}", line.1);
    cleanup(&names).await;
}

#[tokio::test]
async fn a_known_hash_gains_a_name_and_poison_is_dead_lettered_with_its_reason() {
    let names = Names::new("poison");
    let dir = tempfile::tempdir().unwrap();
    let obama = "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6";
    let msg = |name: &str| message(obama, name);
    let mut raw_headers = FieldTable::default();
    raw_headers.insert("name".into(), AMQPValue::LongString("raw.bin".into()));
    publish_with(
        &names,
        vec![
            (msg("photos/obama.jpg"), BasicProperties::default()),
            (b"{not json".to_vec(), BasicProperties::default()),
            (br#"{"hash": "h", "image": "aGk="}"#.to_vec(), BasicProperties::default()),
            (b"\x00\x01 raw garbage".to_vec(), BasicProperties::default().with_headers(raw_headers)),
        ],
    )
    .await;
    let worker = Worker::spawn(FACEREC, &names, &args(&recorded_args(0)), dir.path());
    wait_until("obama stored", Duration::from_secs(30), || async { stored(&names).await == 1 }).await;
    publish(&names, &[msg("https://example.org/copy.jpg")]).await;
    wait_until("3 dead letters", Duration::from_secs(30), || async { queue_len(&names.dead).await == 3 }).await;
    let db2 = redis(2).await;
    wait_until("second name", Duration::from_secs(30), || async {
        let n: Vec<String> = db2.smembers(format!("{}{obama}", names.prefix)).await.unwrap();
        n.len() == 2
    })
    .await;
    let db1 = redis(1).await;
    let h: String = db1.get(format!("{}https://example.org/copy.jpg", names.prefix)).await.unwrap();
    assert_eq!(h, obama);

    let conn = rabbit().await;
    let ch = conn.create_channel().await.unwrap();
    let mut reasons = Vec::new();
    while let Some(m) = ch.basic_get(names.dead.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        reasons.push(
            text_headers(m.delivery.properties.headers().as_ref()).get(REASON_HEADER).cloned().unwrap_or_default(),
        );
    }
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].starts_with("bad message: JSON body has no `name` field"), "{reasons:?}");
    assert!(reasons[1].starts_with("bad message: body is not valid JSON"), "{reasons:?}");
    assert!(reasons[2].starts_with("no recorded encoding"), "{reasons:?}");
    drop(worker);
    cleanup(&names).await;
}

#[tokio::test]
async fn sigkill_mid_batch_and_restart_loses_nothing_and_matches_a_clean_run() {
    let names = Names::new("kill");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(60, 10, 20);
    publish(&names, &batch.messages()).await;
    let mut a = recorded_args(25);
    a[1] = batch.save(dir.path()).display().to_string();
    for round in 0..3 {
        let worker = Worker::spawn(FACEREC, &names, &args(&a), dir.path());
        let target = 10 * (round + 1);
        wait_until("progress before the kill", Duration::from_secs(60), || async { stored(&names).await >= target })
            .await;
        worker.kill9();
    }
    let worker = Worker::spawn(FACEREC, &names, &args(&a), dir.path());
    wait_until("all 60 stored", Duration::from_secs(60), || async { stored(&names).await == 60 }).await;
    wait_until("queue drained", Duration::from_secs(30), || async { queue_len(&names.queue).await == 0 }).await;
    assert!(worker.terminate(Duration::from_secs(20)).success());
    assert_eq!(dump(&names.prefix).await, batch.expected(0.6));
    assert_eq!(queue_len(&names.queue).await, 0, "nothing left unacked");
    assert_eq!(queue_len(&names.dead).await, 0, "nothing dead-lettered");
    cleanup(&names).await;
}

#[tokio::test]
async fn two_workers_on_one_queue_give_the_same_databases_as_one() {
    let names = Names::new("two");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(60, 6, 30);
    publish(&names, &batch.messages()).await;
    let mut logs = listen_logs(&names).await;
    let mut a = recorded_args(20);
    a[1] = batch.save(dir.path()).display().to_string();
    let (mut a1, mut a2) = (a.clone(), a);
    a1[7] = "w1".into();
    a2[7] = "w2".into();
    let w1 = Worker::spawn(FACEREC, &names, &args(&a1), dir.path());
    let w2 = Worker::spawn(FACEREC, &names, &args(&a2), dir.path());
    wait_until("all 60 stored", Duration::from_secs(60), || async { stored(&names).await == 60 }).await;
    assert_eq!(dump(&names.prefix).await, batch.expected(0.6));
    drop((w1, w2));
    let mut per_worker = std::collections::BTreeMap::new();
    while let Ok(Some((key, _))) = tokio::time::timeout(Duration::from_secs(2), logs.recv()).await {
        if key.ends_with(".worker.info") {
            *per_worker.entry(key).or_insert(0) += 1;
        }
    }
    assert_eq!(per_worker.values().sum::<i32>(), 60, "{per_worker:?}");
    assert_eq!(per_worker.len(), 2, "both workers took part: {per_worker:?}");
    cleanup(&names).await;
}

#[tokio::test]
async fn sigterm_finishes_what_is_in_flight_and_leaves_the_rest_queued() {
    let names = Names::new("term");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(10, 3, 40);
    publish(&names, &batch.messages()).await;
    let mut a = recorded_args(700);
    a[1] = batch.save(dir.path()).display().to_string();
    a.extend(["--concurrency".into(), "2".into()]);
    let worker = Worker::spawn(FACEREC, &names, &args(&a), dir.path());
    wait_until("first image stored", Duration::from_secs(30), || async { stored(&names).await >= 1 }).await;
    let status = worker.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    let done = stored(&names).await;
    assert!(done < 10, "it stopped early, as asked");
    wait_until("unacked returned", Duration::from_secs(10), || async {
        queue_len(&names.queue).await as usize == 10 - done
    })
    .await;
    // Every stored image is complete: names, faces and matches were written together.
    let db = dump(&names.prefix).await;
    let expected = batch.expected(0.6);
    for ((d, key), values) in &db {
        if *d == 3 {
            assert_eq!(Some(values), expected.get(&(3, key.clone())));
        }
    }
    cleanup(&names).await;
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let names = Names::new("http");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut a = recorded_args(0);
    a[5] = format!("127.0.0.1:{port}");
    let worker = Worker::spawn(FACEREC, &names, &args(&a), dir.path());
    let get = |path: &'static str| async move {
        let url = format!("http://127.0.0.1:{port}{path}");
        tokio::task::spawn_blocking(move || match ureq::get(&url).call() {
            Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
            Err(ureq::Error::StatusCode(code)) => (code, String::new()),
            Err(_) => (0, String::new()),
        })
        .await
        .unwrap()
    };
    wait_until("healthz", Duration::from_secs(20), || async { get("/healthz").await.0 == 200 }).await;
    wait_until("readyz", Duration::from_secs(30), || async { get("/readyz").await.0 == 200 }).await;
    let obama = "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6";
    publish(&names, &[message(obama, "o.jpg"), b"junk".to_vec()]).await;
    wait_until("metrics count the messages", Duration::from_secs(30), || async {
        let m = get("/metrics").await.1;
        m.contains("facerec_messages_total{outcome=\"stored\"} 1")
            && m.contains("facerec_messages_total{outcome=\"dead_letter\"} 1")
    })
    .await;
    let metrics = get("/metrics").await.1;
    for series in [
        "facerec_faces_found_total 1",
        "facerec_index_faces 1",
        "facerec_in_flight 0",
        "facerec_processing_seconds_count{stage=\"total\"} 1",
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
    drop(worker);
    // Not ready when Redis cannot be reached: a worker pointed at a closed port.
    let mut b = recorded_args(0);
    let port2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    b[5] = format!("127.0.0.1:{port2}");
    b.extend(["--redis-url".into(), "redis://127.0.0.1:1".into()]);
    let worker = Worker::spawn(FACEREC, &names, &args(&b), dir.path());
    let get2 = |path: &'static str| async move {
        let url = format!("http://127.0.0.1:{port2}{path}");
        tokio::task::spawn_blocking(move || match ureq::get(&url).call() {
            Ok(r) => r.status().as_u16(),
            Err(ureq::Error::StatusCode(code)) => code,
            Err(_) => 0,
        })
        .await
        .unwrap()
    };
    wait_until("healthz without Redis", Duration::from_secs(20), || async { get2("/healthz").await == 200 }).await;
    assert_eq!(get2("/readyz").await, 503);
    drop(worker);
    cleanup(&names).await;
}

#[tokio::test]
async fn passwords_in_urls_never_reach_the_logs() {
    let names = Names::new("secret");
    let dir = tempfile::tempdir().unwrap();
    let mut a = recorded_args(0);
    a.extend(["--rabbitmq-url".into(), "amqp://guest:Sup3r-S3cret-AMQP@127.0.0.1:5672/%2f".into()]);
    a.extend(["--redis-url".into(), "redis://:Sup3r-S3cret-REDIS@127.0.0.1:6379".into()]);
    let worker = Worker::spawn(FACEREC, &names, &args(&a), dir.path());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let logs = worker.logs();
    drop(worker);
    assert!(
        logs.contains("not available") || logs.contains("cannot"),
        "the wrong credentials must be reported:\n{logs}"
    );
    assert!(!logs.contains("Sup3r-S3cret"), "a password leaked into the logs:\n{logs}");
    cleanup(&names).await;
}
