//! An ordered, shared list of events from several fakes.

use std::sync::{Arc, Mutex};

/// Events in the order they happened, e.g. `"index.add_image ok h1"`, `"settle Ack #3"`.
#[derive(Debug, Clone, Default)]
pub struct Timeline(Arc<Mutex<Vec<String>>>);

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event.
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().expect("timeline lock").push(event.into());
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<String> {
        self.0.lock().expect("timeline lock").clone()
    }

    /// Position of the first event starting with `prefix`.
    pub fn position(&self, prefix: &str) -> Option<usize> {
        self.events().iter().position(|e| e.starts_with(prefix))
    }
}
