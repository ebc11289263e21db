//! A `facerec worker` process pointed at a test's names, and signals to processes.

use crate::testkit::names::Names;
use crate::testkit::servers::{amqp_url, redis_url};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running `facerec worker`; killed when dropped.
pub struct Worker {
    child: Child,
    /// The file its stderr (its logs) goes to.
    pub log: PathBuf,
}

impl Worker {
    /// Starts the binary at `bin` (a test's `env!("CARGO_BIN_EXE_facerec")`: only
    /// integration tests know it) with the test's names plus `extra` flags; stderr goes to
    /// a file in `log_dir`.
    pub fn spawn(bin: &str, names: &Names, extra: &[&str], log_dir: &Path) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let log = log_dir.join(format!("worker-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let child = Command::new(bin)
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

    /// Whether it is still running (has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL: no chance to settle anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
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

    /// Everything it has logged so far.
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

/// Sends the signal `name` (`"TERM"`, `"STOP"`, ...) to `pid` through kill(1).
pub fn signal(pid: i32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}
