//! [`AmqpLogs`]: progress lines to the `logs` topic exchange, never in the way.
//!
//! `publish` puts the line in a bounded buffer and returns; a background task with its own
//! connection sends it. When RabbitMQ is slow or down and the buffer is full, lines are
//! dropped and counted: image processing never waits for a log line.

use super::topology::ensure_exchange;
use super::{AmqpSettings, Frames, connect_any};
use crate::backoff::Backoff;
use crate::ports::LogSink;
use async_trait::async_trait;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, ExchangeKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const BUFFER: usize = 4096;

/// The `logs` exchange as a [`LogSink`].
pub struct AmqpLogs {
    lines: mpsc::Sender<(String, String)>,
    dropped: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    closing: CancellationToken,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AmqpLogs {
    /// Starts the publishing task and returns at once.
    pub fn start(settings: AmqpSettings) -> Self {
        let (tx, rx) = mpsc::channel(BUFFER);
        let (dropped, sent) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let closing = CancellationToken::new();
        let task = tokio::spawn(send_lines(settings, rx, dropped.clone(), sent.clone(), closing.clone()));
        Self { lines: tx, dropped, sent, closing, task: std::sync::Mutex::new(Some(task)) }
    }

    /// Lines handed to the broker so far (after [`AmqpLogs::close`]: every line that went
    /// out; a one-shot command checks its audit line did).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Lines dropped because the buffer was full or the broker unreachable.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Sends what is buffered (waiting at most `timeout`), then closes.
    pub async fn close(&self, timeout: Duration) {
        self.closing.cancel();
        let task = self.task.lock().expect("lock").take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(timeout, task).await;
        }
    }
}

#[async_trait]
impl LogSink for AmqpLogs {
    async fn publish(&self, routing_key: &str, line: &str) {
        if self.lines.try_send((routing_key.to_owned(), line.to_owned())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn send_lines(
    settings: AmqpSettings,
    mut rx: mpsc::Receiver<(String, String)>,
    dropped: Arc<AtomicU64>,
    sent_lines: Arc<AtomicU64>,
    closing: CancellationToken,
) {
    let mut backoff = Backoff::default();
    let name = format!("{} logs", settings.connection_name);
    // A line taken from the buffer but not yet sent (kept across a reconnect).
    let mut held: Option<(String, String)> = None;
    loop {
        let channel = match connect_any(&settings, &name, Frames::Small, Duration::from_secs(10)).await {
            Ok(conn) => {
                match ensure_exchange(&conn, &settings.logs_exchange, ExchangeKind::Topic, settings.logs_durable).await
                {
                    Ok(()) => conn.create_channel().await.ok().map(|c| (conn, c)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot declare the logs exchange");
                        None
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "logs connection failed");
                None
            }
        };
        let Some((conn, channel)) = channel else {
            // Keep the buffer moving while disconnected: drop what cannot be sent now.
            let deadline = tokio::time::sleep(backoff.next_delay());
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => break,
                    () = closing.cancelled() => return,
                    line = rx.recv() => match line {
                        Some(_) => { dropped.fetch_add(1, Ordering::Relaxed); }
                        None => return,
                    },
                }
            }
            if held.take().is_some() {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        };
        backoff.reset();
        loop {
            let next = match held.take() {
                Some(l) => Some(l),
                // Closing: send what is buffered, then stop.
                None if closing.is_cancelled() => rx.try_recv().ok(),
                None => tokio::select! {
                    line = rx.recv() => line,
                    () = closing.cancelled() => rx.try_recv().ok(),
                },
            };
            let Some((key, line)) = next else {
                let _ = conn.close(200, "worker stopping".into()).await;
                return;
            };
            let properties = BasicProperties::default().with_content_type("text/plain".into());
            let sent = channel
                .basic_publish(
                    settings.logs_exchange.as_str().into(),
                    key.as_str().into(),
                    BasicPublishOptions::default(),
                    line.as_bytes(),
                    properties,
                )
                .await;
            match sent {
                Ok(_) => {
                    sent_lines.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "logs channel failed; reconnecting");
                    held = Some((key, line));
                    break;
                }
            }
        }
    }
}
