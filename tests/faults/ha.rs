//! High availability on Redis Sentinel (issue 17): the primary found through the
//! sentinels, a `kill -9` of the primary mid-batch followed without losing an acknowledged
//! image (`FACEREC_REDIS_WAIT_REPLICAS=1`), and the face cache rebuilt from db 3 when the
//! change log no longer holds the worker's position (entries lost with the old primary).

use crate::FACEREC;
use crate::SERIAL;
use facerec::adapters::redis_index::{RedisIndex, SentinelSettings};
use facerec::ports::{FaceIndex, NewImage};
use facerec_fakes::testkit::sentinel::MASTER;
use facerec_fakes::testkit::servers::{cleanup, count_keys, dump_at, publish, queue_len, redis, redis_url};
use facerec_fakes::testkit::{Batch, Names, SentinelSet, Worker, wait_until};
use fred::prelude::*;
use std::time::{Duration, Instant};

fn sentinel_settings(set: &SentinelSet) -> SentinelSettings {
    let hosts = set
        .sentinels()
        .split(',')
        .map(|hp| {
            let (h, p) = hp.rsplit_once(':').unwrap();
            (h.to_owned(), p.parse().unwrap())
        })
        .collect();
    SentinelSettings { hosts, master: MASTER.into(), password: None }
}

fn new_image(batch: &Batch, i: usize) -> NewImage {
    let img = &batch.recording.images[i];
    NewImage::bare(img.hash.clone(), img.name.clone(), img.faces.iter().map(|f| f.encoding).collect(), "synthetic")
}

#[tokio::test]
async fn the_primary_is_found_through_the_sentinels() {
    let set = SentinelSet::start();
    set.wait_ready().await;
    let names = Names::new("ha-discover");
    // REDIS_URL points at the shared Redis: with sentinels it must not be used.
    let settings = facerec::adapters::redis_index::RedisSettings {
        sentinel: Some(sentinel_settings(&set)),
        ..names.redis_settings()
    };
    let index = RedisIndex::connect(settings).await.unwrap();
    let batch = Batch::new(2, 2, 171);
    index.add_image(&new_image(&batch, 0), 0.6).await.unwrap();
    let on_primary = dump_at(&set.primary_url().await, &names.prefix).await;
    let expected = Batch {
        recording: facerec::adapters::recorded_encoder::Recording {
            images: batch.recording.images[..1].to_vec(),
            ..batch.recording.clone()
        },
    }
    .expected(0.6);
    assert_eq!(on_primary, expected, "the image must be on the primary the sentinels name");
    assert_eq!(count_keys(&redis_url(), 2, &names.prefix).await, 0, "nothing on REDIS_URL's server");
    index.close().await;
}

#[tokio::test]
async fn a_primary_killed_mid_batch_is_followed_and_no_acked_image_is_lost() {
    let _serial = SERIAL.lock().await;
    let mut set = SentinelSet::start();
    set.wait_ready().await;
    let names = Names::new("ha-failover");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(120, 10, 172);
    publish(&names, &batch.messages()).await;
    let recording = batch.save(dir.path()).display().to_string();
    let sentinels = set.sentinels();
    let args = [
        "--encodings",
        &recording,
        "--recorded-delay-ms",
        "40",
        "--http-addr",
        "off",
        "--concurrency",
        "2",
        "--redis-sentinels",
        &sentinels,
        "--redis-sentinel-master",
        MASTER,
        "--redis-wait-replicas",
        "1",
        "--redis-timeout",
        "3",
    ];
    let worker = Worker::spawn(FACEREC, &names, &args, dir.path());
    let old = set.primary_port().await;
    let old_url = format!("redis://127.0.0.1:{old}");
    wait_until("30 images stored", Duration::from_secs(60), || async {
        count_keys(&old_url, 2, &names.prefix).await >= 30
    })
    .await;
    let killed = set.kill_primary().await;
    let fault = Instant::now();
    let new = set.wait_failover(killed, Duration::from_secs(30)).await;
    // WAIT 1 needs a replica: the old primary comes back as the new one's replica.
    set.restart_as_replica(killed, new);
    let new_url = format!("redis://127.0.0.1:{new}");
    let before = count_keys(&new_url, 2, &names.prefix).await;
    wait_until("the next image stored after the failover", Duration::from_secs(60), || async {
        count_keys(&new_url, 2, &names.prefix).await > before
    })
    .await;
    let stall = fault.elapsed();
    wait_until("all 120 stored on the new primary", Duration::from_secs(120), || async {
        count_keys(&new_url, 2, &names.prefix).await == 120
    })
    .await;
    wait_until("queue drained", Duration::from_secs(30), || async { queue_len(&names.queue).await == 0 }).await;
    let logs = worker.logs();
    assert!(worker.terminate(Duration::from_secs(20)).success(), "{logs}");
    assert_eq!(dump_at(&new_url, &names.prefix).await, batch.expected(0.6), "databases differ: {logs}");
    assert_eq!(queue_len(&names.dead).await, 0, "nothing dead-lettered: {logs}");
    eprintln!("primary {killed} killed, {new} promoted; stall {:.1} s", stall.as_secs_f64());
    cleanup(&names).await;
}

#[tokio::test]
async fn the_cache_is_rebuilt_when_the_change_log_lost_its_position() {
    let names = Names::new("ha-log-behind");
    let batch = Batch::new(3, 3, 173);
    let index = RedisIndex::connect(names.redis_settings()).await.unwrap();
    index.add_image(&new_image(&batch, 0), 0.6).await.unwrap();
    index.add_image(&new_image(&batch, 1), 0.6).await.unwrap();
    let faces_of = |i: usize| batch.recording.images[i].faces.len();
    assert_eq!(index.cached_faces(), faces_of(0) + faces_of(1));
    // What a failover that lost the last write leaves: image 1 is gone from every
    // database and from the log, but this worker's cache (and position) still hold it.
    let lost = batch.recording.images[1].hash.as_str().to_owned();
    let db0 = redis(0).await;
    let stream = format!("{}facerec:faces", names.prefix);
    let entries: Vec<(String, Vec<(String, String)>)> = db0.xrange(&stream, "-", "+", None).await.unwrap();
    let (lost_id, _) = entries.iter().find(|(_, f)| f.iter().any(|(_, v)| *v == lost)).unwrap();
    let _: i64 = db0.xdel(&stream, lost_id.as_str()).await.unwrap();
    for db in 0..=4u8 {
        let c = redis(db).await;
        for key in [
            format!("{}{lost}", names.prefix),
            format!("{}{}", names.prefix, batch.recording.images[1].name),
            format!("{}facerec:image:{lost}", names.prefix),
            format!("{}facerec:dist:{lost}", names.prefix),
        ] {
            let _: i64 = c.del(key).await.unwrap();
        }
        let _ = c.quit().await;
    }
    index.add_image(&new_image(&batch, 2), 0.6).await.unwrap();
    assert_eq!(
        index.cached_faces(),
        faces_of(0) + faces_of(2),
        "the cache must hold exactly what db 3 holds, not the image lost with the old primary"
    );
    let _ = db0.quit().await;
    index.close().await;
    cleanup(&names).await;
}

#[tokio::test]
async fn a_dead_first_broker_is_skipped_for_the_next_one() {
    use facerec::adapters::amqp::client::ImagePublisher;
    use facerec::config::ServiceUrl;
    use facerec_fakes::testkit::servers::amqp_url;
    let names = Names::new("ha-brokers");
    // A loopback port nothing listens on: connection refused, as from a stopped node.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = ServiceUrl::parse("RABBITMQ_URLS", &format!("amqp://guest:guest@127.0.0.1:{dead_port}/%2f"), &["amqp"]);
    let live = ServiceUrl::parse("RABBITMQ_URLS", &amqp_url(), &["amqp"]).unwrap();
    let mut settings = names.amqp_settings();
    settings.url = dead.unwrap();
    settings.brokers = vec![settings.url.clone(), live];
    let publisher = ImagePublisher::connect(settings.clone(), "ha-brokers test").await.unwrap();
    let hash = facerec::hash::ImageHash::parse("hadead01").unwrap();
    publisher.publish_image(&hash, "a.jpg", b"stand-in", false).await.unwrap();
    assert_eq!(queue_len(&names.queue).await, 1, "published through the live broker");
    assert_eq!(settings.current_broker.load(std::sync::atomic::Ordering::Relaxed), 1, "the live one is remembered");
    cleanup(&names).await;
}
