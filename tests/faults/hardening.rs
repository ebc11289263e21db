//! Issue 12, delivery side, against the real broker and a spawned worker: a message that
//! kills the worker stops at `max_attempts`, a deleted dead-letter queue strands nothing,
//! an encode past its deadline is dead-lettered, a Redis outage spends no attempts.

use crate::own_redis::OwnRedis;
use crate::{FACEREC, SERIAL};
use facerec::adapters::amqp::{REASON_HEADER, text_headers};
use facerec_fakes::testkit::servers::{cleanup, count_keys, publish, publish_undeclared, queue_len, rabbit, stored};
use facerec_fakes::testkit::{Batch, Names, Worker, wait_until};
use futures::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ExchangeKind};
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

/// Reasons of the dead letters, taking them off the queue.
async fn dead_reasons(names: &Names) -> Vec<String> {
    let conn = rabbit().await;
    let ch = conn.create_channel().await.unwrap();
    let mut reasons = Vec::new();
    while let Some(m) = ch.basic_get(names.dead.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        let headers = text_headers(m.delivery.properties.headers().as_ref());
        reasons.push(headers.get(REASON_HEADER).cloned().unwrap_or_default());
    }
    let _ = conn.close(200, "bye".into()).await;
    reasons
}

/// Every progress line the worker publishes, from a queue of the test's own bound to the
/// logs exchange (declared as the worker declares it).
struct LogTap {
    conn: Connection,
    queue: String,
    lines: lapin::Consumer,
}

impl LogTap {
    async fn new(names: &Names) -> Self {
        let conn = rabbit().await;
        let ch = conn.create_channel().await.unwrap();
        let options = ExchangeDeclareOptions::default();
        ch.exchange_declare(names.logs.as_str().into(), ExchangeKind::Topic, options, FieldTable::default())
            .await
            .unwrap();
        let queue = format!("{}.tap", names.queue);
        ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
        ch.queue_bind(
            queue.as_str().into(),
            names.logs.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let lines = ch
            .basic_consume(
                queue.as_str().into(),
                "tap".into(),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self { conn, queue, lines }
    }

    /// Lines received so far (waiting briefly for stragglers).
    async fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_millis(300), self.lines.next()).await {
            out.push(String::from_utf8_lossy(&d.data).into_owned());
        }
        out
    }

    async fn close(self) {
        let ch = self.conn.create_channel().await.unwrap();
        let _ = ch.queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default()).await;
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// The attempt numbers in `received ... (N bytes, attempt K)` lines.
fn attempts(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter(|l| l.starts_with("received "))
        .filter_map(|l| l.rsplit("attempt ").next()?.trim_end_matches(')').parse().ok())
        .collect()
}

#[tokio::test]
async fn a_message_that_kills_the_worker_is_dead_lettered_after_max_attempts() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("harden-kill");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(1, 1, 90);
    let recording = batch.save(dir.path()).display().to_string();
    let mut tap = LogTap::new(&names).await;
    publish(&names, &batch.messages()).await;
    let args = [
        "--encodings",
        &recording,
        "--recorded-delay-ms",
        "4000",
        "--http-addr",
        "off",
        "--max-attempts",
        "2",
        "--concurrency",
        "1",
    ];
    let mut seen = Vec::new();
    for _ in 0..6 {
        let worker = Worker::spawn(FACEREC, &names, &args, dir.path());
        // Up, consuming, and (unless it dead-letters at once) holding the message.
        wait_until("worker consuming", Duration::from_secs(20), || async {
            worker.logs().contains("consuming from RabbitMQ")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        worker.kill9();
        seen.extend(attempts(&tap.drain().await));
        if queue_len(&names.dead).await > 0 {
            break;
        }
    }
    eprintln!("attempts seen by the workers, one SIGKILL each: {seen:?}");
    let reasons = dead_reasons(&names).await;
    assert_eq!(reasons.len(), 1, "dead-lettered once; attempts seen: {seen:?}");
    assert!(reasons[0].starts_with("killed the worker 2 times"), "{}", reasons[0]);
    assert_eq!(seen, [1, 2], "processed max_attempts times, never more");
    assert_eq!(queue_len(&names.queue).await, 0);
    tap.close().await;
    cleanup(&names).await;
}

#[tokio::test]
async fn a_deleted_dead_letter_queue_strands_nothing() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("harden-dlq");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(1, 1, 91);
    let recording = batch.save(dir.path()).display().to_string();
    let args = ["--encodings", &recording, "--http-addr", "off", "--concurrency", "2"];
    let worker = Worker::spawn(FACEREC, &names, &args, dir.path());
    wait_until("worker consuming", Duration::from_secs(20), || async {
        worker.logs().contains("consuming from RabbitMQ")
    })
    .await;
    let conn = rabbit().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(names.dead.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    let _ = conn.close(200, "bye".into()).await;
    let mut messages = vec![b"{not json".to_vec(), b"{still not json".to_vec()];
    messages.extend(batch.messages());
    let started = Instant::now();
    publish_undeclared(&names, messages.into_iter().map(|m| (m, BasicProperties::default())).collect()).await;
    wait_until("the valid image behind two malformed ones stored", Duration::from_secs(30), || async {
        stored(&names).await == 1
    })
    .await;
    eprintln!("valid image behind two malformed ones, dead-letter queue deleted: stored in {:?}", started.elapsed());
    wait_until("both malformed messages dead-lettered", Duration::from_secs(10), || async {
        queue_len(&names.dead).await == 2
    })
    .await;
    assert!(worker.logs().contains("declaring it again"), "{}", worker.logs());
    assert!(worker.terminate(Duration::from_secs(20)).success());
    assert_eq!(queue_len(&names.queue).await, 0, "nothing left behind");
    cleanup(&names).await;
}

#[tokio::test]
async fn an_encode_past_its_deadline_is_dead_lettered_and_the_worker_goes_on() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("harden-deadline");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(1, 1, 92);
    let recording = batch.save(dir.path()).display().to_string();
    publish(&names, &batch.messages()).await;
    let args =
        ["--encodings", &recording, "--recorded-delay-ms", "5000", "--http-addr", "off", "--max-encode-seconds", "1"];
    let worker = Worker::spawn(FACEREC, &names, &args, dir.path());
    wait_until("dead-lettered at its deadline", Duration::from_secs(20), || async {
        queue_len(&names.dead).await == 1
    })
    .await;
    let reasons = dead_reasons(&names).await;
    assert!(reasons[0].contains("FACEREC_MAX_ENCODE_SECONDS"), "{reasons:?}");
    assert!(worker.terminate(Duration::from_secs(20)).success(), "still running after the deadline");
    cleanup(&names).await;
}

/// `GET /readyz` status code.
fn readyz(port: u16) -> u16 {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_redis_outage_longer_than_the_retry_budget_dead_letters_nothing() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("harden-outage");
    let dir = tempfile::tempdir().unwrap();
    let redis = OwnRedis::start();
    let batch = Batch::new(5, 3, 93);
    let recording = batch.save(dir.path()).display().to_string();
    let url = redis.url();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let http = format!("127.0.0.1:{port}");
    let outage = Duration::from_secs(
        std::env::var("FACEREC_DRILL_OUTAGE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15),
    );
    let args = [
        "--encodings",
        &recording,
        "--http-addr",
        &http,
        "--redis-url",
        &url,
        "--max-attempts",
        "3",
        "--retry-base-ms",
        "200",
        "--retry-max-ms",
        "400",
        "--redis-timeout",
        "1",
    ];
    let worker = Worker::spawn(FACEREC, &names, &args, dir.path());
    wait_until("worker ready", Duration::from_secs(20), || async { readyz(port) == 200 }).await;
    redis.freeze();
    publish(&names, &batch.messages()).await;
    let mut not_ready = false;
    let until = Instant::now() + outage;
    while Instant::now() < until {
        not_ready |= readyz(port) == 503;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let dead_during_outage = queue_len(&names.dead).await;
    redis.thaw();
    eprintln!("valid messages dead-lettered during a {outage:?} Redis outage: {dead_during_outage}");
    assert_eq!(dead_during_outage, 0, "an outage spends no attempts");
    assert!(not_ready, "/readyz must say not ready while Redis is down");
    wait_until("all 5 stored after the outage", Duration::from_secs(60), || async {
        count_keys(&url, 2, &names.prefix).await == 5
    })
    .await;
    wait_until("ready again", Duration::from_secs(20), || async { readyz(port) == 200 }).await;
    assert!(worker.terminate(Duration::from_secs(20)).success());
    assert_eq!(queue_len(&names.dead).await, 0);
    cleanup(&names).await;
}
