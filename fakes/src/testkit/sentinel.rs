//! A Redis primary, one replica and three sentinels of a test's own, on random loopback
//! ports with data in a temporary folder, so a test can kill the primary and watch the
//! failover without touching the shared Redis.

use crate::testkit::servers::redis_at;
use fred::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name the sentinels monitor the primary under.
pub const MASTER: &str = "facerec-test";

/// One `redis-server` process (a data server or a sentinel).
struct Node {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    fn launch(&mut self, log: &Path) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Primary + replica + 3 sentinels (quorum 2, failover within about 2 s of the primary
/// going silent); every process is killed when this is dropped.
pub struct SentinelSet {
    dir: tempfile::TempDir,
    /// The data servers, in start order: primary, replica (roles change with failovers).
    data: Vec<Node>,
    sentinels: Vec<Node>,
}

impl SentinelSet {
    /// Starts the five processes and waits until the sentinels see the replica.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (primary, replica) = (free_port(), free_port());
        let mut set = Self { dir, data: Vec::new(), sentinels: Vec::new() };
        for (i, port) in [primary, replica].into_iter().enumerate() {
            let data_dir = set.sub_dir(&format!("redis-{i}"));
            let mut args = vec![
                "--port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "yes".into(),
                "--dir".into(),
                data_dir.display().to_string(),
            ];
            if i == 1 {
                args.extend(["--replicaof".into(), "127.0.0.1".into(), primary.to_string()]);
            }
            let mut node = Node { port, args, child: None };
            node.launch(&set.dir.path().join(format!("redis-{i}.log")));
            set.data.push(node);
        }
        for i in 0..3 {
            let port = free_port();
            let conf = set.sub_dir(&format!("sentinel-{i}")).join("sentinel.conf");
            // Sentinel rewrites its file as it learns: each needs its own, writable.
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n\
                     sentinel parallel-syncs {MASTER} 1\n"
                ),
            )
            .expect("sentinel.conf");
            let args = vec![conf.display().to_string(), "--sentinel".into()];
            let mut node = Node { port, args, child: None };
            node.launch(&set.dir.path().join(format!("sentinel-{i}.log")));
            set.sentinels.push(node);
        }
        set
    }

    fn sub_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).expect("data dir");
        d
    }

    /// `host:port,...` of the sentinels (`REDIS_SENTINELS`).
    pub fn sentinels(&self) -> String {
        self.sentinels.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    /// Port of the data server the sentinels currently name as primary.
    pub async fn primary_port(&self) -> u16 {
        for s in &self.sentinels {
            let client = sentinel_client(s.port).await;
            let addr: Result<Vec<String>, _> = client
                .custom(fred::cmd!("SENTINEL"), vec!["get-master-addr-by-name".to_owned(), MASTER.to_owned()])
                .await;
            let _ = client.quit().await;
            if let Some(port) = addr.ok().and_then(|a| a.get(1).and_then(|p| p.parse().ok())) {
                return port;
            }
        }
        panic!("no sentinel names a primary for {MASTER}");
    }

    /// URL of the current primary (as the sentinels see it).
    pub async fn primary_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.primary_port().await)
    }

    /// Waits until the sentinels know the replica and it is in sync, so a failover can happen.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let replica = self.data[1].port;
        loop {
            let client = redis_at(&format!("redis://127.0.0.1:{replica}"), 0).await;
            let info: String = client.custom(fred::cmd!("INFO"), vec!["replication".to_owned()]).await.unwrap();
            let _ = client.quit().await;
            let mut known = 0;
            for s in &self.sentinels {
                let c = sentinel_client(s.port).await;
                let replicas: Result<fred::types::Value, _> =
                    c.custom(fred::cmd!("SENTINEL"), vec!["replicas".to_owned(), MASTER.to_owned()]).await;
                let _ = c.quit().await;
                if replicas.is_ok_and(|v| v.array_len().unwrap_or(0) > 0) {
                    known += 1;
                }
            }
            if info.contains("master_link_status:up") && known == 3 {
                return;
            }
            assert!(Instant::now() < deadline, "sentinel set not ready: {info}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL the server that is primary now; returns its port.
    pub async fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().await;
        self.data.iter_mut().find(|n| n.port == port).expect("primary is one of ours").kill9();
        port
    }

    /// Starts the data server on `port` again (on its files) as a replica of `primary`, as
    /// an operator's start script does: started as a primary it would serve stale data
    /// until Sentinel demotes it.
    pub fn restart_as_replica(&mut self, port: u16, primary: u16) {
        let log = self.dir.path().join(format!("redis-{port}-restarted.log"));
        let node = self.data.iter_mut().find(|n| n.port == port).expect("one of ours");
        // The first ten arguments are port, bind, save, appendonly and dir; then any --replicaof.
        node.args.truncate(10);
        node.args.extend(["--replicaof".into(), "127.0.0.1".into(), primary.to_string()]);
        node.launch(&log);
    }

    /// Waits until the sentinels name a primary other than `old` and it accepts writes.
    pub async fn wait_failover(&self, old: u16, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        loop {
            let port = self.primary_port().await;
            if port != old {
                let client = redis_at(&format!("redis://127.0.0.1:{port}"), 0).await;
                let role: Result<Vec<fred::types::Value>, _> =
                    client.custom(fred::cmd!("ROLE"), Vec::<String>::new()).await;
                let _ = client.quit().await;
                if role.is_ok_and(|r| r.first().and_then(|v| v.as_str().map(|s| s == "master")).unwrap_or(false)) {
                    return port;
                }
            }
            assert!(Instant::now() < deadline, "no failover away from {old} within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Everything the processes logged (for assertion messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                out += &format!("== {}\n{text}\n", entry.path().display());
            }
        }
        out
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for n in self.sentinels.iter_mut().chain(self.data.iter_mut()) {
            n.kill9();
        }
    }
}

/// A client of a sentinel (which knows no SELECT, so no database is chosen).
async fn sentinel_client(port: u16) -> Client {
    let config = Config::from_url(&format!("redis://127.0.0.1:{port}")).expect("static URL");
    let client = Builder::from_config(config).build().expect("client");
    tokio::time::timeout(Duration::from_secs(5), client.init())
        .await
        .expect("sentinel answers")
        .expect("sentinel reachable");
    client
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("loopback").local_addr().expect("port").port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server on port {port} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}
