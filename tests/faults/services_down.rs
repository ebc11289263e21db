//! Redis crashed and restarted, RabbitMQ stopped and started, Redis frozen longer than the
//! retry budget: the worker reconnects and finishes, or dead-letters with a reason, and
//! never exits.

use crate::FACEREC;
use crate::SERIAL;
use crate::own_redis::OwnRedis;
use facerec_fakes::testkit::servers::{cleanup, count_keys, dump_at, publish, queue_len};
use facerec_fakes::testkit::{Batch, Names, Worker, wait_until};
use std::process::Command;
use std::time::Duration;

async fn stored_at(url: &str, names: &Names) -> usize {
    count_keys(url, 2, &names.prefix).await
}

fn rabbitmqctl(action: &str) {
    let status = Command::new("rabbitmqctl").arg(action).status().expect("rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {action}");
}

#[tokio::test]
async fn redis_crashing_mid_batch_is_survived_without_loss() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("drill-redis");
    let dir = tempfile::tempdir().unwrap();
    let mut redis = OwnRedis::start();
    let batch = Batch::new(100, 8, 60);
    publish(&names, &batch.messages()).await;
    let recording = batch.save(dir.path()).display().to_string();
    let url = redis.url();
    let args = [
        "--encodings",
        &recording,
        "--recorded-delay-ms",
        "20",
        "--http-addr",
        "off",
        "--redis-url",
        &url,
        "--max-attempts",
        "20",
        "--retry-base-ms",
        "200",
        "--retry-max-ms",
        "1000",
        "--redis-timeout",
        "2",
    ];
    let worker = Worker::spawn(FACEREC, &names, &args, dir.path());
    wait_until("30 stored", Duration::from_secs(60), || async { stored_at(&url, &names).await >= 30 }).await;
    redis.crash_and_restart(Duration::from_secs(2));
    wait_until("all 100 stored", Duration::from_secs(120), || async { stored_at(&url, &names).await == 100 }).await;
    wait_until("queue drained", Duration::from_secs(30), || async { queue_len(&names.queue).await == 0 }).await;
    assert!(worker.terminate(Duration::from_secs(20)).success(), "the worker never exits on a transient fault");
    assert_eq!(dump_at(&url, &names.prefix).await, batch.expected(0.6));
    assert_eq!(queue_len(&names.dead).await, 0);
    cleanup(&names).await;
}

#[tokio::test]
async fn rabbitmq_stopping_and_starting_mid_batch_is_survived_without_loss() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("drill-rabbit");
    let dir = tempfile::tempdir().unwrap();
    let redis = OwnRedis::start();
    let batch = Batch::new(100, 8, 70);
    publish(&names, &batch.messages()).await;
    let recording = batch.save(dir.path()).display().to_string();
    let url = redis.url();
    let args = ["--encodings", &recording, "--recorded-delay-ms", "20", "--http-addr", "off", "--redis-url", &url];
    let worker = Worker::spawn(FACEREC, &names, &args, dir.path());
    wait_until("30 stored", Duration::from_secs(60), || async { stored_at(&url, &names).await >= 30 }).await;
    rabbitmqctl("stop_app");
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl("start_app");
    let _ = Command::new("rabbitmqctl").arg("await_startup").status();
    wait_until("all 100 stored", Duration::from_secs(120), || async { stored_at(&url, &names).await == 100 }).await;
    wait_until("queue drained", Duration::from_secs(60), || async { queue_len(&names.queue).await == 0 }).await;
    assert!(worker.logs().contains("reconnecting") || worker.logs().contains("cannot consume"), "{}", worker.logs());
    assert!(worker.terminate(Duration::from_secs(20)).success());
    assert_eq!(dump_at(&url, &names.prefix).await, batch.expected(0.6));
    assert_eq!(queue_len(&names.dead).await, 0);
    cleanup(&names).await;
}

#[tokio::test]
async fn redis_frozen_past_the_retry_budget_spends_no_attempts_and_work_resumes() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("drill-frozen");
    let dir = tempfile::tempdir().unwrap();
    let redis = OwnRedis::start();
    let batch = Batch::new(10, 3, 80);
    let recording = batch.save(dir.path()).display().to_string();
    let url = redis.url();
    let args = [
        "--encodings",
        &recording,
        "--http-addr",
        "off",
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
    wait_until("worker up", Duration::from_secs(20), || async { worker.logs().contains("consuming from RabbitMQ") })
        .await;
    redis.freeze();
    let messages = batch.messages();
    publish(&names, &messages[..5]).await;
    // Far longer than 3 attempts with 0.2-0.4 s back-off and 1 s timeouts: an outage is not
    // the messages' fault, so none of them may be dead-lettered.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(queue_len(&names.dead).await, 0, "an outage spent the messages' attempts: {}", worker.logs());
    redis.thaw();
    publish(&names, &messages[5..]).await;
    wait_until("all 10 stored", Duration::from_secs(60), || async { stored_at(&url, &names).await == 10 }).await;
    assert!(worker.terminate(Duration::from_secs(20)).success(), "still running after the outage");
    assert_eq!(queue_len(&names.dead).await, 0);
    cleanup(&names).await;
}
