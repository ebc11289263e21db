//! Process logs (tracing) to stderr; `RUST_LOG` sets the level.
//!
//! These are the operator's logs. The `logs` exchange is a separate port
//! ([`LogSink`](crate::ports::LogSink)), not a tracing layer.

use std::io::Write;
use std::sync::RwLock;
use tracing_subscriber::EnvFilter;

/// A progress bar shown on the terminal, if any: log lines are written above it.
static BAR: RwLock<Option<indicatif::ProgressBar>> = RwLock::new(None);

/// Installs the stderr subscriber with `default_level` unless `RUST_LOG` is set. Safe to
/// call more than once (later calls do nothing).
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only on a terminal: log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(|| Stderr).try_init();
}

/// While `bar` is shown, log lines are written above it rather than through it (`None`:
/// straight to stderr again).
pub fn log_above(bar: Option<indicatif::ProgressBar>) {
    *BAR.write().unwrap_or_else(std::sync::PoisonError::into_inner) = bar;
}

/// stderr, clearing and redrawing the progress bar around each line.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = BAR.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
