//! [`RecordingLogs`]: keeps every published line.

use async_trait::async_trait;
use facerec::ports::LogSink;
use std::sync::{Arc, Mutex};

/// Every `(routing key, line)` published, in order.
#[derive(Clone, Default)]
pub struct RecordingLogs(Arc<Mutex<Vec<(String, String)>>>);

impl RecordingLogs {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<(String, String)> {
        self.0.lock().expect("lock").clone()
    }

    /// Routing keys only, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lines().into_iter().map(|(k, _)| k).collect()
    }
}

#[async_trait]
impl LogSink for RecordingLogs {
    async fn publish(&self, routing_key: &str, line: &str) {
        self.0.lock().expect("lock").push((routing_key.to_owned(), line.to_owned()));
    }
}
