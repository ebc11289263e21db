//! Process logs (tracing) to stderr; `RUST_LOG` sets the level.
//!
//! These are the operator's logs. The `logs` exchange is a separate port
//! ([`LogSink`](crate::ports::LogSink)), not a tracing layer.

use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber with `default_level` unless `RUST_LOG` is set. Safe to
/// call more than once (later calls do nothing).
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only on a terminal: log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}
