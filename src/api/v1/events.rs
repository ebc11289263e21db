//! `GET /api/v1/events`: a server-sent event per image stored (`status: done`) or
//! dead-lettered (`status: failed`), so the page updates without polling.
//!
//! One poller task per API process (started by the first subscriber, ended when the last
//! one leaves) watches [`FaceIndex::recent`](crate::ports::FaceIndex::recent) and the
//! failures of the images this process queued, and fans each event out over a tokio
//! broadcast channel. Sending never waits for a client: a client that falls more than
//! [`BUFFER`] events behind is dropped (its stream ends; it reconnects and re-reads the
//! list), and never slows the others.

use super::images::{ImageStatus, ImageView};
use crate::api::Api;
use crate::hash::ImageHash;
use crate::ports::{FaceIndex, IndexError};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::broadcast;

/// Events a client may fall behind before it is dropped.
pub const BUFFER: usize = 256;
/// How often the poller looks at the index.
pub const POLL: Duration = Duration::from_millis(500);
/// Images read per call of `recent`: a poll reads pages of this many until it reaches an
/// image the last poll saw, and keeps the first page as the next poll's baseline (so
/// erasing fewer than this many of the newest images leaves it something to find).
pub const WINDOW: usize = 100;
/// Images a poll looks through for one the last poll saw. Found none (over 1,000 images
/// stored within one poll, or the whole baseline erased since): nothing is announced and
/// the newest page becomes the baseline, rather than announcing older images as new (the
/// page's list shows every image).
pub const CATCH_UP: usize = 1_000;
/// Comment line sent while nothing happens, so proxies keep the connection.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The shared poller and its channel.
pub struct Hub {
    tx: broadcast::Sender<Arc<str>>,
    running: Mutex<bool>,
    /// Hashes this process queued whose failure the poller looks for (bounded).
    pending: Mutex<VecDeque<ImageHash>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self { tx: broadcast::channel(BUFFER).0, running: Mutex::new(false), pending: Mutex::default() }
    }
}

/// Failures looked for at most: the images queued last.
const PENDING: usize = 256;

impl Hub {
    /// Notes an image this process queued, so its dead-lettering is announced too.
    pub fn queued(&self, hash: &ImageHash) {
        let mut pending = self.pending.lock().expect("events lock");
        if !pending.contains(hash) {
            pending.push_back(hash.clone());
            if pending.len() > PENDING {
                pending.pop_front();
            }
        }
    }

    /// A new subscriber; starts the poller if none runs.
    fn subscribe(&self, api: &Arc<Api>) -> broadcast::Receiver<Arc<str>> {
        let rx = self.tx.subscribe();
        let mut running = self.running.lock().expect("events lock");
        if !*running {
            *running = true;
            tokio::spawn(poll(Arc::downgrade(api)));
        }
        rx
    }

    /// Whether the poller should stop (no subscriber left); marks it stopped if so.
    fn idle(&self) -> bool {
        let mut running = self.running.lock().expect("events lock");
        if self.tx.receiver_count() == 0 {
            *running = false;
            return true;
        }
        false
    }
}

/// The poller: announces every image that appears at the top of `recent`, and every
/// queued image that gets a failure record.
async fn poll(api: Weak<Api>) {
    let mut seen: Option<HashSet<ImageHash>> = None;
    loop {
        let Some(api) = api.upgrade() else { return };
        let hub = &api.events;
        if hub.idle() {
            return;
        }
        match new_images(&*api.ports.index, seen.as_ref()).await {
            Ok((top, fresh)) => {
                for hash in fresh.iter().rev() {
                    if let Ok(Some(record)) = api.ports.index.image(hash).await {
                        hub.pending.lock().expect("events lock").retain(|h| h != hash);
                        send(hub, &ImageView::done(record));
                    }
                }
                seen = Some(top);
            }
            Err(e) => tracing::debug!(error = %e, "events: index not readable now"),
        }
        let pending: Vec<ImageHash> = hub.pending.lock().expect("events lock").iter().cloned().collect();
        for hash in pending {
            if let Ok(Some(failure)) = api.ports.index.failure(&hash).await {
                hub.pending.lock().expect("events lock").retain(|h| h != &hash);
                send(hub, &ImageView::missing(&hash, ImageStatus::Failed, Some(failure)));
            }
        }
        drop(api);
        tokio::time::sleep(POLL).await;
    }
}

/// The newest page's hashes (the next poll's baseline) and, newest first, the images above
/// the newest one in `seen`: the pages are followed down until one holds an image seen
/// before (or, when the store was empty at the baseline, until it ends). When no seen
/// image turns up within [`CATCH_UP`] images nothing counts as new. Without a baseline (the
/// first look) nothing is new: what was there before is not news.
async fn new_images(
    index: &dyn FaceIndex,
    seen: Option<&HashSet<ImageHash>>,
) -> Result<(HashSet<ImageHash>, Vec<ImageHash>), IndexError> {
    let mut page = index.recent(WINDOW, None).await?;
    let top: HashSet<ImageHash> = page.hashes.iter().cloned().collect();
    let Some(seen) = seen else { return Ok((top, Vec::new())) };
    let mut fresh = Vec::new();
    loop {
        if let Some(known) = page.hashes.iter().position(|h| seen.contains(h)) {
            fresh.extend(page.hashes.drain(..known));
            return Ok((top, fresh));
        }
        fresh.append(&mut page.hashes);
        match page.next {
            Some(cursor) if fresh.len() < CATCH_UP => page = index.recent(WINDOW, Some(cursor)).await?,
            _ if seen.is_empty() => return Ok((top, fresh)),
            _ => {
                tracing::debug!(read = fresh.len(), "events: no image of the last poll found; new baseline");
                return Ok((top, Vec::new()));
            }
        }
    }
}

fn send(hub: &Hub, view: &ImageView) {
    if let Ok(json) = serde_json::to_string(view) {
        // Err only when nobody listens: nothing to do.
        let _ = hub.tx.send(Arc::from(json));
    }
}

/// Events as images are stored or dead-lettered.
#[utoipa::path(get, path = "/api/v1/events", tag = "images",
    responses(
        (status = 200, description = "`text/event-stream`: `event: image` with an ImageView as `data`, \
            whenever an image is stored (status done) or one queued here is dead-lettered (status failed); \
            `: keep-alive` every 15 s", body = String, content_type = "text/event-stream"),
    ))]
pub async fn events(State(api): State<Arc<Api>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = api.events.subscribe(&api);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(json) => Some((Ok(Event::default().event("image").data(&*json)), rx)),
            // Too slow (lagged) or shutting down: end this client's stream only.
            Err(_) => None,
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}
