//! A [`MessageSource`] over files: image files (`facerec scan`) or captured messages
//! (`facerec replay`). Folders are walked recursively in name order.
//!
//! Requeued deliveries go to the back of the list with `attempt` raised; every settlement
//! is kept so the command can report what was dead-lettered and why.

use crate::capture::{self, CapturedMessage};
use crate::ports::{Delivery, DeliveryId, MessageSource, Settlement, SourceError};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::Notify;

/// File name extensions taken from folders by `scan` (files named explicitly are always taken).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "bmp", "webp"];

/// What the files hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Image files; the path is the name, the hash is the SHA-256 of the bytes.
    Images,
    /// Files written by `facerec capture`.
    Captures,
}

#[derive(Default)]
struct State {
    pending: VecDeque<(PathBuf, u32)>,
    in_flight: HashMap<DeliveryId, (PathBuf, u32)>,
    next_id: u64,
    settled: Vec<(PathBuf, Settlement)>,
}

/// Deliveries read from files.
pub struct FileSource {
    kind: FileKind,
    state: Mutex<State>,
    /// Signalled on every settlement: a requeue may refill an empty list.
    settled: Notify,
}

impl FileSource {
    /// Collects the files under `paths` (folders recursively, in name order).
    ///
    /// # Errors
    /// A path that does not exist or a folder that cannot be listed.
    pub fn new(kind: FileKind, paths: &[PathBuf]) -> Result<Self, SourceError> {
        let mut files = Vec::new();
        for path in paths {
            collect(kind, path, &mut files)?;
        }
        let pending = files.into_iter().map(|f| (f, 1)).collect();
        Ok(Self { kind, state: Mutex::new(State { pending, ..State::default() }), settled: Notify::new() })
    }

    /// Number of files not yet taken.
    pub fn remaining(&self) -> usize {
        self.state.lock().expect("source lock poisoned").pending.len()
    }

    /// Every settlement so far, in order, with the file it was for.
    pub fn settled(&self) -> Vec<(PathBuf, Settlement)> {
        self.state.lock().expect("source lock poisoned").settled.clone()
    }

    fn load(&self, path: &Path) -> Result<(Vec<u8>, BTreeMap<String, String>), String> {
        match self.kind {
            FileKind::Images => {
                let body = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok((body, BTreeMap::from([("name".to_owned(), path.display().to_string())])))
            }
            FileKind::Captures => CapturedMessage::read(path).map(|m| (m.body, m.headers)).map_err(|e| e.to_string()),
        }
    }
}

fn collect(kind: FileKind, path: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let meta = std::fs::metadata(path).map_err(|e| SourceError::Fatal(format!("{}: {e}", path.display())))?;
    if !meta.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let wanted = |p: &Path| {
        let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match kind {
            FileKind::Images => ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())),
            FileKind::Captures => ext.as_deref() == Some(capture::EXTENSION),
        }
    };
    for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
        let entry = entry.map_err(|e| SourceError::Fatal(e.to_string()))?;
        if entry.file_type().is_file() && wanted(entry.path()) {
            out.push(entry.into_path());
        }
    }
    Ok(())
}

#[async_trait]
impl MessageSource for FileSource {
    async fn next(&self) -> Result<Option<Delivery>, SourceError> {
        loop {
            let wait = self.settled.notified();
            let taken = {
                let mut state = self.state.lock().expect("source lock poisoned");
                match state.pending.pop_front() {
                    Some((path, attempt)) => {
                        state.next_id += 1;
                        Some((path, attempt, DeliveryId(state.next_id)))
                    }
                    // Done only when nothing in flight can still be requeued.
                    None if state.in_flight.is_empty() => return Ok(None),
                    None => None,
                }
            };
            let Some((path, attempt, id)) = taken else {
                wait.await;
                continue;
            };
            match self.load(&path) {
                Ok((body, headers)) => {
                    self.state.lock().expect("source lock poisoned").in_flight.insert(id, (path, attempt));
                    return Ok(Some(Delivery { id, body, headers, attempt }));
                }
                // A file that cannot be read is settled at once: reported, never retried.
                Err(reason) => {
                    tracing::warn!(%reason, "skipping file");
                    self.state
                        .lock()
                        .expect("source lock poisoned")
                        .settled
                        .push((path, Settlement::DeadLetter { reason }));
                }
            }
        }
    }

    async fn settle(&self, id: DeliveryId, settlement: Settlement) -> Result<(), SourceError> {
        let mut state = self.state.lock().expect("source lock poisoned");
        let (path, attempt) = state
            .in_flight
            .remove(&id)
            .ok_or_else(|| SourceError::Fatal(format!("delivery {} settled twice or unknown", id.0)))?;
        if let Settlement::Requeue { .. } = settlement {
            state.pending.push_back((path.clone(), attempt + 1));
        }
        state.settled.push((path, settlement));
        self.settled.notify_waiters();
        Ok(())
    }
}
