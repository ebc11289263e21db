//! The shared RabbitMQ and Redis: clients (failing with the fix when a server is down),
//! publishing, queue lengths, dumps of a test's keys and cleanup of its names.

use crate::testkit::names::Names;
use fred::prelude::*;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use std::collections::BTreeMap;
use std::time::Duration;

/// `REDIS_URL`, or the loopback default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `RABBITMQ_URL`, or the loopback default.
pub fn amqp_url() -> String {
    std::env::var("RABBITMQ_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A Redis client on database `db`; panics with a clear message when Redis is down.
pub async fn redis(db: u8) -> Client {
    redis_at(&redis_url(), db).await
}

/// A client of the Redis at `url`, on database `db`.
pub async fn redis_at(url: &str, db: u8) -> Client {
    let redis_url = || url.to_owned();
    let mut config = Config::from_url(url).unwrap();
    config.database = Some(db);
    let client = Builder::from_config(config).build().unwrap();
    tokio::time::timeout(Duration::from_secs(5), client.init())
        .await
        .unwrap_or_else(|_| panic!("Redis at {} did not answer: run scripts/services.sh", redis_url()))
        .unwrap_or_else(|e| panic!("Redis at {} is not reachable ({e}): run scripts/services.sh", redis_url()));
    client
}

/// A RabbitMQ connection; panics with a clear message when RabbitMQ is down.
pub async fn rabbit() -> Connection {
    tokio::time::timeout(Duration::from_secs(5), Connection::connect(&amqp_url(), ConnectionProperties::default()))
        .await
        .unwrap_or_else(|_| panic!("RabbitMQ at {} did not answer: run scripts/services.sh", amqp_url()))
        .unwrap_or_else(|e| panic!("RabbitMQ at {} is not reachable ({e}): run scripts/services.sh", amqp_url()))
}

/// Everything stored under `prefix` in databases 1-4, keys without the prefix; set
/// members sorted; encodings as hex.
pub async fn dump(prefix: &str) -> BTreeMap<(u8, String), Vec<String>> {
    dump_at(&redis_url(), prefix).await
}

/// [`dump`] of the Redis at `url`.
pub async fn dump_at(url: &str, prefix: &str) -> BTreeMap<(u8, String), Vec<String>> {
    let mut out = BTreeMap::new();
    for db in 1..=4u8 {
        let client = redis_at(url, db).await;
        let keys: Vec<String> = scan_keys(&client, prefix).await;
        for key in keys {
            let short = key[prefix.len()..].to_owned();
            let values: Vec<String> = if db == 1 {
                vec![client.get::<String, _>(&key).await.unwrap()]
            } else {
                let members: Vec<Vec<u8>> = client.smembers(&key).await.unwrap();
                let mut v: Vec<String> = members
                    .iter()
                    .map(|m| if db == 3 { hex::encode(m) } else { String::from_utf8_lossy(m).into_owned() })
                    .collect();
                v.sort();
                v
            };
            out.insert((db, short), values);
        }
        let _ = client.quit().await;
    }
    out
}

/// Every key under `prefix` in the client's database (SCAN, so a busy server is not blocked).
pub async fn scan_keys(client: &Client, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let (next, page): (String, Vec<String>) = client
            .custom(
                fred::cmd!("SCAN"),
                vec![cursor.clone(), "MATCH".into(), format!("{prefix}*"), "COUNT".into(), "1000".into()],
            )
            .await
            .unwrap();
        keys.extend(page);
        if next == "0" {
            return keys;
        }
        cursor = next;
    }
}

/// Number of keys under `prefix` in database `db` of the Redis at `url`.
pub async fn count_keys(url: &str, db: u8, prefix: &str) -> usize {
    let client = redis_at(url, db).await;
    let n = scan_keys(&client, prefix).await.len();
    let _ = client.quit().await;
    n
}

/// Images stored (named in db 2) under the test's prefix, in the default Redis.
pub async fn stored(names: &Names) -> usize {
    count_keys(&redis_url(), 2, &names.prefix).await
}

/// Deletes the test's keys and broker objects.
pub async fn cleanup(names: &Names) {
    for db in 0..=4u8 {
        let client = redis(db).await;
        for key in scan_keys(&client, &names.prefix).await {
            let _: i64 = client.del(key).await.unwrap();
        }
        let _ = client.quit().await;
    }
    let conn = rabbit().await;
    let ch = conn.create_channel().await.unwrap();
    for q in [&names.queue, &names.dead] {
        let _ = ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
    }
    for x in [&names.exchange, &names.logs] {
        let _ = ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()).await;
    }
    let _ = conn.close(200, "bye".into()).await;
}

/// Publishes bodies to the test's exchange, persistent, with confirms.
pub async fn publish(names: &Names, bodies: &[Vec<u8>]) {
    publish_with(names, bodies.iter().map(|b| (b.clone(), BasicProperties::default())).collect()).await
}

/// Publishes bodies with their properties to the test's exchange, persistent, with confirms.
pub async fn publish_with(names: &Names, messages: Vec<(Vec<u8>, BasicProperties)>) {
    let conn = rabbit().await;
    // Declared as the worker declares it, so messages published before it starts are kept.
    facerec::adapters::amqp::topology::declare_work(&conn, &names.amqp_settings()).await.unwrap();
    let _ = conn.close(200, "bye".into()).await;
    publish_undeclared(names, messages).await;
}

/// Publishes to the test's exchange without declaring anything (drills that removed a
/// queue on purpose), persistent, with confirms; every message must reach a queue.
pub async fn publish_undeclared(names: &Names, messages: Vec<(Vec<u8>, BasicProperties)>) {
    let conn = rabbit().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    for (body, props) in messages {
        let confirm = ch
            .basic_publish(
                names.exchange.as_str().into(),
                names.queue.as_str().into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                &body,
                props.with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(confirm, Confirmation::Ack(None));
    }
    let _ = conn.close(200, "bye".into()).await;
}

/// Messages in a queue (ready, not counting unacked).
pub async fn queue_len(queue: &str) -> u32 {
    let conn = rabbit().await;
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let q = ch.queue_declare(queue.into(), passive, Default::default()).await.unwrap();
    let _ = conn.close(200, "bye".into()).await;
    q.message_count()
}
