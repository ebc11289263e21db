//! A [`LogSink`] that writes progress lines to the process log (stderr): what
//! `facerec scan` and local replays use instead of the `logs` exchange.

use crate::ports::LogSink;
use async_trait::async_trait;

/// Progress lines as `tracing` events: `*.debug` keys at DEBUG, `*.info` at INFO,
/// `*.warning` at WARN, `*.error` at ERROR.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrLogs;

#[async_trait]
impl LogSink for StderrLogs {
    async fn publish(&self, routing_key: &str, line: &str) {
        match routing_key.rsplit('.').next() {
            Some("debug") => tracing::debug!(target: "facerec::progress", "{line}"),
            Some("info") => tracing::info!(target: "facerec::progress", "{line}"),
            Some("warning") => tracing::warn!(target: "facerec::progress", "{line}"),
            _ => tracing::error!(target: "facerec::progress", "{line}"),
        }
    }
}
