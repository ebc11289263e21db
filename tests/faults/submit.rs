//! `facerec submit` while RabbitMQ stops and comes back (`rabbitmqctl stop_app` on the
//! shared broker): it re-sends what was not confirmed after reconnecting, finishes, and
//! every image it reported as sent is on the queue (a duplicate is allowed: processing is
//! idempotent).

use crate::FACEREC;
use crate::SERIAL;
use facerec_fakes::testkit::servers::{amqp_url, cleanup, rabbit};
use facerec_fakes::testkit::{Names, wait_until};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const IMAGES: usize = 3_000;

fn rabbitmqctl(action: &str) {
    let status = Command::new("rabbitmqctl").arg(action).status().expect("rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {action}");
}

/// Starts the broker again however the test ends.
struct StartAppOnDrop;

impl Drop for StartAppOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").status();
        let _ = Command::new("rabbitmqctl").arg("await_startup").status();
    }
}

#[tokio::test]
async fn submit_resends_what_was_not_confirmed_when_the_broker_goes_away() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("drill-submit");
    let folder = tempfile::tempdir().unwrap();
    for i in 0..IMAGES {
        // Distinct contents: distinct hashes. Submit does not decode; it only publishes.
        let body = format!("\u{ff}\u{d8}image {i:05} {}", "x".repeat(2000));
        std::fs::write(folder.path().join(format!("{i:05}.jpg")), body).unwrap();
    }
    let mut child = Command::new(FACEREC)
        .arg("submit")
        .arg(folder.path())
        .args(names.worker_args().iter().take_while(|a| !a.starts_with("--redis")))
        .args(["--resend-for", "90"])
        .env("RABBITMQ_URL", amqp_url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting facerec submit");
    let printed = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let printed = printed.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                printed.lock().unwrap().push(line.split_whitespace().next().unwrap_or_default().to_owned());
            }
        })
    };
    wait_until("the first images confirmed", Duration::from_secs(60), || async {
        printed.lock().unwrap().len() >= 200
    })
    .await;
    let restart = StartAppOnDrop;
    rabbitmqctl("stop_app");
    let during = printed.lock().unwrap().len();
    assert!(during < IMAGES, "the batch finished before the broker stopped: make it bigger");
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(restart); // start_app + await_startup

    let status = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr).into_owned();
    assert!(status.status.success(), "submit failed: {stderr}");
    assert!(stderr.contains("sent again after the broker connection was lost"), "{stderr}");
    let printed: BTreeSet<String> = printed.lock().unwrap().iter().cloned().collect();
    assert_eq!(printed.len(), IMAGES, "every image reported once");

    // Everything reported as sent is on the (durable) queue.
    let connection = rabbit().await;
    let channel = connection.create_channel().await.unwrap();
    let mut queued = BTreeSet::new();
    let mut messages = 0usize;
    while let Some(m) = channel.basic_get(names.queue.as_str().into(), BasicGetOptions::default()).await.unwrap() {
        let body: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
        queued.insert(body["hash"].as_str().unwrap().to_owned());
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
        messages += 1;
    }
    let lost: Vec<&String> = printed.difference(&queued).collect();
    assert!(lost.is_empty(), "{} confirmed images are not on the queue, e.g. {:?}", lost.len(), lost.first());
    eprintln!(
        "{IMAGES} images, broker stopped after {during}; {messages} messages queued ({} duplicates)",
        messages - IMAGES
    );
    cleanup(&names).await;
}
