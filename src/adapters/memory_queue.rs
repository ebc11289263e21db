//! [`MemoryQueue`]: the work queue of `facerec serve`, inside the process. One bounded
//! queue that is both ends: the REST front-end submits through [`ImageQueue`], the runner
//! takes deliveries through [`MessageSource`].
//!
//! Semantics, as the broker's: `submit` returns `Ok` only once the image is in the queue
//! (when full it fails at once, and the API answers 503); a delivery stays held until it is
//! settled; `Requeue` puts it back at the end with `attempt` raised, `Release` with
//! `attempt` unchanged; `DeadLetter` records the reason through
//! [`FaceIndex::record_failure`] (so `GET /api/v1/images/{hash}` says `failed` and why)
//! before the message is removed. Nothing accepted is dropped while the process lives;
//! what is still queued when it stops is handed back by [`MemoryQueue::close`] so the
//! caller can say so. A crash loses the queue (the index, with `--index`, keeps what was
//! stored).
//!
//! Bounds: messages waiting *or* in flight count against both limits, so a requeue never
//! needs room and never fails.

use crate::hash::ImageHash;
use crate::ports::{Delivery, DeliveryId, FaceIndex, ImageQueue, MessageSource, QueueError, Settlement, SourceError};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How much the queue holds at most (waiting and in flight together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Images.
    pub max_images: usize,
    /// Bytes of image data; one image larger than this is still taken into an empty queue.
    pub max_bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self { max_images: 10_000, max_bytes: 512 << 20 }
    }
}

/// One image in the queue.
#[derive(Debug, Clone)]
struct Message {
    hash: ImageHash,
    name: String,
    image: Arc<[u8]>,
    attempt: u32,
}

/// An image that was queued and never processed (see [`MemoryQueue::close`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprocessed {
    /// Its key.
    pub hash: ImageHash,
    /// The name it was submitted with.
    pub name: String,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Message>,
    in_flight: HashMap<DeliveryId, Message>,
    held_bytes: usize,
    next_id: u64,
    dead_lettered: u64,
    closed: bool,
}

impl State {
    fn held(&self) -> usize {
        self.waiting.len() + self.in_flight.len()
    }
}

/// The in-process work queue.
pub struct MemoryQueue {
    limits: QueueLimits,
    state: Mutex<State>,
    /// Signalled on every change: a message in, a settlement, closing.
    changed: Notify,
    /// Where dead letters are recorded.
    failures: Arc<dyn FaceIndex>,
}

impl MemoryQueue {
    /// An empty queue; dead letters are recorded in `failures`.
    pub fn new(limits: QueueLimits, failures: Arc<dyn FaceIndex>) -> Self {
        Self { limits, state: Mutex::new(State::default()), changed: Notify::new(), failures }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("queue lock poisoned")
    }

    /// Adds a message if there is room; `Err` says why not.
    fn try_push(&self, hash: &ImageHash, name: &str, image: &[u8]) -> Result<(), QueueError> {
        let mut state = self.lock();
        if state.closed {
            return Err(QueueError::Unavailable("the server is shutting down".into()));
        }
        let full_bytes = state.held() > 0 && state.held_bytes + image.len() > self.limits.max_bytes;
        if state.held() >= self.limits.max_images.max(1) || full_bytes {
            return Err(QueueError::Unavailable(format!(
                "the in-process queue is full ({} images, {} MiB)",
                state.held(),
                state.held_bytes >> 20
            )));
        }
        state.held_bytes += image.len();
        state.waiting.push_back(Message { hash: hash.clone(), name: name.to_owned(), image: image.into(), attempt: 1 });
        drop(state);
        self.changed.notify_waiters();
        Ok(())
    }

    /// Like [`ImageQueue::submit`], but waits for room instead of failing when the queue is
    /// full (the start-up scan of folders). `false`: `stop` fired or the queue closed first.
    pub async fn submit_waiting(&self, hash: &ImageHash, name: &str, image: &[u8], stop: &CancellationToken) -> bool {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.try_push(hash, name, image) {
                Ok(()) => return true,
                Err(_) if self.lock().closed => return false,
                Err(_) => {}
            }
            tokio::select! {
                () = stop.cancelled() => return false,
                () = changed => {}
            }
        }
    }

    /// Waits until nothing is waiting or in flight. `false`: `stop` fired first.
    pub async fn until_empty(&self, stop: &CancellationToken) -> bool {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.lock().held() == 0 {
                return true;
            }
            tokio::select! {
                () = stop.cancelled() => return false,
                () = changed => {}
            }
        }
    }

    /// Images dead-lettered so far.
    pub fn dead_lettered(&self) -> u64 {
        self.lock().dead_lettered
    }

    /// Refuses further submissions, ends [`MessageSource::next`] with `Ok(None)`, and
    /// returns the images still waiting (never taken). Deliveries in flight can still be
    /// settled; a requeued one is then returned by the next `close`.
    pub fn close(&self) -> Vec<Unprocessed> {
        let mut state = self.lock();
        state.closed = true;
        let left: Vec<Unprocessed> =
            state.waiting.drain(..).map(|m| Unprocessed { hash: m.hash, name: m.name }).collect();
        state.held_bytes = state.in_flight.values().map(|m| m.image.len()).sum();
        drop(state);
        self.changed.notify_waiters();
        left
    }

    /// Puts a taken message back at the end of the queue.
    fn put_back(&self, message: Message) {
        self.lock().waiting.push_back(message);
        self.changed.notify_waiters();
    }
}

#[async_trait]
impl ImageQueue for MemoryQueue {
    async fn submit(&self, hash: &ImageHash, name: &str, image: &[u8]) -> Result<(), QueueError> {
        self.try_push(hash, name, image)
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        Ok(self.lock().waiting.len() as u64)
    }
}

#[async_trait]
impl MessageSource for MemoryQueue {
    async fn next(&self) -> Result<Option<Delivery>, SourceError> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed {
                    return Ok(None);
                }
                if let Some(message) = state.waiting.pop_front() {
                    state.next_id += 1;
                    let id = DeliveryId(state.next_id);
                    let delivery = Delivery {
                        id,
                        body: message.image.to_vec(),
                        headers: BTreeMap::from([
                            ("name".to_owned(), message.name.clone()),
                            ("hash".to_owned(), message.hash.to_string()),
                        ]),
                        attempt: message.attempt,
                    };
                    state.in_flight.insert(id, message);
                    return Ok(Some(delivery));
                }
            }
            changed.await;
        }
    }

    async fn settle(&self, id: DeliveryId, settlement: Settlement) -> Result<(), SourceError> {
        let message = self
            .lock()
            .in_flight
            .remove(&id)
            .ok_or_else(|| SourceError::Fatal(format!("delivery {} settled twice or unknown", id.0)))?;
        match settlement {
            Settlement::Ack => {}
            Settlement::Requeue { .. } => {
                self.put_back(Message { attempt: message.attempt + 1, ..message });
                return Ok(());
            }
            Settlement::Release { .. } => {
                self.put_back(message);
                return Ok(());
            }
            Settlement::DeadLetter { reason } => {
                // Stored before it is removed, as the port requires; if the record cannot be
                // written the message stays (a nack: it is delivered again).
                if let Err(e) = self.failures.record_failure(&message.hash, &reason).await {
                    self.put_back(message);
                    return Err(SourceError::Unavailable(format!("recording the dead letter: {e}")));
                }
                // The orchestrator has logged it already, with the reason.
                tracing::debug!(hash = %message.hash, %reason, "dead letter recorded");
                self.lock().dead_lettered += 1;
            }
        }
        let mut state = self.lock();
        state.held_bytes = state.held_bytes.saturating_sub(message.image.len());
        drop(state);
        self.changed.notify_waiters();
        Ok(())
    }
}
