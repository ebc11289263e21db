//! Four workers on one queue: the match relation equals the sequential one, and names
//! arriving at once for one hash are all kept.

use crate::FACEREC;
use crate::SERIAL;
use facerec_fakes::testkit::servers::{cleanup, count_keys, dump, publish, redis, redis_url};
use facerec_fakes::testkit::{Batch, Names, Worker, message, wait_until};
use fred::prelude::*;
use std::time::Duration;

async fn count(db: u8, names: &Names) -> usize {
    count_keys(&redis_url(), db, &names.prefix).await
}

#[tokio::test]
async fn four_workers_on_two_hundred_images_of_few_people_equal_a_sequential_run() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("drill-four");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(200, 4, 90);
    publish(&names, &batch.messages()).await;
    let recording = batch.save(dir.path()).display().to_string();
    let args = ["--encodings", &recording, "--recorded-delay-ms", "5", "--http-addr", "off"];
    let workers: Vec<Worker> = (0..4).map(|_| Worker::spawn(FACEREC, &names, &args, dir.path())).collect();
    wait_until("all 200 stored", Duration::from_secs(120), || async { count(2, &names).await == 200 }).await;
    assert_eq!(dump(&names.prefix).await, batch.expected(0.6));
    drop(workers);
    cleanup(&names).await;
}

#[tokio::test]
async fn a_hundred_names_for_one_hash_at_once_are_all_kept() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("drill-names");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(1, 1, 95);
    let hash = batch.recording.images[0].hash.as_str().to_owned();
    let messages: Vec<Vec<u8>> = (0..100).map(|i| message(&hash, &format!("copy-{i:03}.jpg"))).collect();
    publish(&names, &messages).await;
    let recording = batch.save(dir.path()).display().to_string();
    let args = ["--encodings", &recording, "--http-addr", "off"];
    let workers: Vec<Worker> = (0..4).map(|_| Worker::spawn(FACEREC, &names, &args, dir.path())).collect();
    wait_until("100 names in db 1", Duration::from_secs(60), || async { count(1, &names).await == 100 }).await;
    let db2 = redis(2).await;
    let stored: Vec<String> = db2.smembers(format!("{}{hash}", names.prefix)).await.unwrap();
    assert_eq!(stored.len(), 100, "no name lost to a concurrent update");
    drop(workers);
    cleanup(&names).await;
}
