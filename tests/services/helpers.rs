//! Shared: unique names, clients, a spawned worker process, synthetic batches, DB dumps.

use facerec::adapters::recorded_encoder::{FORMAT, RecordedImage, Recording};
use facerec::face::{BoundingBox, ENCODING_DIMS, Encoding, Face};
use facerec::hash::ImageHash;
use fred::prelude::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn amqp_url() -> String {
    std::env::var("RABBITMQ_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Per-test names: Redis key prefix, exchange, queues, logs exchange.
#[derive(Debug, Clone)]
pub struct Names {
    pub prefix: String,
    pub exchange: String,
    pub queue: String,
    pub dead: String,
    pub logs: String,
}

impl Names {
    pub fn new(test: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!("{test}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        Self {
            prefix: format!("t:{id}:"),
            exchange: format!("x-{id}"),
            queue: format!("q-{id}"),
            dead: format!("q-{id}.dead"),
            logs: format!("logs-{id}"),
        }
    }

    /// The worker flags that point it at these names.
    pub fn worker_args(&self) -> Vec<String> {
        [
            ("--exchange", &self.exchange),
            ("--queue", &self.queue),
            ("--routing-key", &self.queue),
            ("--dead-letter-queue", &self.dead),
            ("--logs-exchange", &self.logs),
            ("--redis-key-prefix", &self.prefix),
        ]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect()
    }
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

pub async fn publish_with(names: &Names, messages: Vec<(Vec<u8>, BasicProperties)>) {
    let conn = rabbit().await;
    // Declared as the worker declares it, so messages published before it starts are kept.
    facerec::adapters::amqp::topology::declare_work(&conn, &amqp_settings(names)).await.unwrap();
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

pub fn amqp_settings(names: &Names) -> facerec::adapters::amqp::AmqpSettings {
    let url = facerec::config::ServiceUrl::parse("RABBITMQ_URL", &amqp_url(), &["amqp", "amqps"]).unwrap();
    let mut s = facerec::adapters::amqp::AmqpSettings::new(url, "test-host");
    s.exchange = names.exchange.clone();
    s.queue = names.queue.clone();
    s.routing_key = names.queue.clone();
    s.dead_letter_queue = names.dead.clone();
    s.logs_exchange = names.logs.clone();
    s
}

/// Messages in a queue (ready, not counting unacked).
pub async fn queue_len(queue: &str) -> u32 {
    let conn = rabbit().await;
    let ch = conn.create_channel().await.unwrap();
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    let q = ch.queue_declare(queue.into(), passive, Default::default()).await.unwrap();
    let _ = conn.close(200, "bye".into()).await;
    q.message_count()
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `facerec worker` process.
pub struct Worker {
    child: Child,
    pub log: PathBuf,
}

impl Worker {
    /// Starts the binary with the test's names plus `extra` flags; stderr goes to a file.
    pub fn spawn(names: &Names, extra: &[&str], log_dir: &Path) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let log = log_dir.join(format!("worker-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let child = Command::new(env!("CARGO_BIN_EXE_facerec"))
            .arg("worker")
            .args(names.worker_args())
            .args(extra)
            .env("RABBITMQ_URL", amqp_url())
            .env("REDIS_URL", redis_url())
            .env("RUST_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting facerec worker");
        Self { child, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL: no chance to settle anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "worker did not stop within {timeout:?}: {}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: i32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}

/// A synthetic batch: `people` distinct faces, `images` images each showing one or two of
/// them with small noise (same person < 0.3 apart, different people > 0.9 apart).
pub struct Batch {
    pub recording: Recording,
    #[allow(dead_code)]
    pub names: Vec<String>,
}

impl Batch {
    pub fn new(images: usize, people: usize, seed: u64) -> Self {
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        // Person centres: far apart in a random subspace.
        let centres: Vec<[f64; ENCODING_DIMS]> = (0..people)
            .map(|p| {
                let mut c = [0.0; ENCODING_DIMS];
                c[p % ENCODING_DIMS] = 0.8;
                c[(p * 7 + 3) % ENCODING_DIMS] += 0.4;
                c
            })
            .collect();
        let mut recorded = Vec::new();
        let mut names = Vec::new();
        for i in 0..images {
            let shown = if i % 5 == 0 { 2 } else { 1 };
            let faces: Vec<Face> = (0..shown)
                .map(|k| {
                    let person = (i * 3 + k * 11) % people;
                    let mut v = centres[person];
                    for x in v.iter_mut() {
                        *x += (next() - 0.5) * 0.02;
                    }
                    // Round through f32, as dlib's encodings are.
                    let v = v.map(|x| f64::from(x as f32));
                    Face { bbox: BoundingBox { top: 0, right: 10, bottom: 10, left: 0 }, encoding: Encoding(v) }
                })
                .collect();
            let hash = ImageHash::parse(&format!("synthetic{seed}-{i:04}")).unwrap();
            names.push(format!("batch/{i:04}.jpg"));
            recorded.push(RecordedImage { hash, name: names[i].clone(), width: 10, height: 10, faces });
        }
        Self {
            recording: Recording { format: FORMAT.into(), fingerprint: "synthetic".into(), images: recorded },
            names,
        }
    }

    pub fn save(&self, dir: &Path) -> PathBuf {
        let path = dir.join("batch.json");
        self.recording.save(&path).unwrap();
        path
    }

    /// One JSON message per image (image bytes are a stand-in; the encoder goes by hash).
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.recording
            .images
            .iter()
            .map(|i| {
                serde_json::json!({"hash": i.hash.as_str(), "name": i.name, "image": "c3RhbmQtaW4="})
                    .to_string()
                    .into_bytes()
            })
            .collect()
    }

    /// The databases a clean sequential run must produce, computed here by brute force.
    pub fn expected(&self, tolerance: f64) -> BTreeMap<(u8, String), Vec<String>> {
        let mut out = BTreeMap::new();
        let images = &self.recording.images;
        for img in images {
            let h = img.hash.as_str().to_owned();
            out.insert((1, img.name.clone()), vec![h.clone()]);
            out.insert((2, h.clone()), vec![img.name.clone()]);
            let mut encs: Vec<String> = img.faces.iter().map(|f| hex::encode(f.encoding.to_le_bytes())).collect();
            encs.sort();
            encs.dedup();
            out.insert((3, h.clone()), encs);
            let mut linked: BTreeSet<String> = BTreeSet::new();
            for other in images {
                if other.hash == img.hash {
                    continue;
                }
                let near =
                    img.faces.iter().any(|a| other.faces.iter().any(|b| a.encoding.distance(&b.encoding) <= tolerance));
                if near {
                    linked.insert(other.hash.as_str().to_owned());
                }
            }
            if !linked.is_empty() {
                out.insert((4, h), linked.into_iter().collect());
            }
        }
        out
    }
}
