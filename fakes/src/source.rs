//! [`FakeSource`]: an in-memory queue that behaves like a broker queue.

use crate::timeline::Timeline;
use async_trait::async_trait;
use facerec::ports::{Delivery, DeliveryId, MessageSource, Settlement, SourceError};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Body, headers and attempt of a queued message.
type Message = (Vec<u8>, BTreeMap<String, String>, u32);

#[derive(Default)]
struct Inner {
    queue: VecDeque<Message>,
    in_flight: HashMap<DeliveryId, Message>,
    settled: Vec<(DeliveryId, Settlement)>,
    dead_letters: Vec<(Vec<u8>, String)>,
    next_id: u64,
    fail_settles: usize,
}

/// A queue: `push` messages, run the orchestrator, then inspect what was settled.
/// Requeued messages go to the back with `attempt + 1`, released ones with `attempt`
/// unchanged; dead letters are kept with their
/// reason. `next` returns `None` once the queue is empty and nothing is in flight (a
/// delivery in flight may still come back), so a run ends when all work is settled.
#[derive(Clone, Default)]
pub struct FakeSource {
    inner: Arc<Mutex<Inner>>,
    settled: Arc<Notify>,
    timeline: Option<Timeline>,
}

impl FakeSource {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue that writes `settle ...` events to `timeline`.
    pub fn with_timeline(timeline: Timeline) -> Self {
        Self { timeline: Some(timeline), ..Self::default() }
    }

    /// Enqueues a message body with no headers.
    pub fn push(&self, body: impl Into<Vec<u8>>) {
        self.push_with_headers(body, BTreeMap::new());
    }

    /// Enqueues a message with headers.
    pub fn push_with_headers(&self, body: impl Into<Vec<u8>>, headers: BTreeMap<String, String>) {
        self.inner.lock().expect("lock").queue.push_back((body.into(), headers, 1));
    }

    /// Makes the next `n` calls to `settle` fail as if the connection dropped: the
    /// delivery goes back to the queue unsettled, as a broker would redeliver it.
    pub fn fail_next_settles(&self, n: usize) {
        self.inner.lock().expect("lock").fail_settles = n;
    }

    /// Every settlement, in order.
    pub fn settlements(&self) -> Vec<(DeliveryId, Settlement)> {
        self.inner.lock().expect("lock").settled.clone()
    }

    /// Bodies and reasons of dead-lettered messages.
    pub fn dead_letters(&self) -> Vec<(Vec<u8>, String)> {
        self.inner.lock().expect("lock").dead_letters.clone()
    }

    /// Number of acked messages.
    pub fn acked(&self) -> usize {
        self.settlements().iter().filter(|(_, s)| *s == Settlement::Ack).count()
    }

    /// Messages neither settled nor waiting: must be zero after a run.
    pub fn unsettled(&self) -> usize {
        self.inner.lock().expect("lock").in_flight.len()
    }
}

#[async_trait]
impl MessageSource for FakeSource {
    async fn next(&self) -> Result<Option<Delivery>, SourceError> {
        loop {
            let wait = self.settled.notified();
            {
                let mut inner = self.inner.lock().expect("lock");
                if let Some((body, headers, attempt)) = inner.queue.pop_front() {
                    inner.next_id += 1;
                    let id = DeliveryId(inner.next_id);
                    inner.in_flight.insert(id, (body.clone(), headers.clone(), attempt));
                    return Ok(Some(Delivery { id, body, headers, attempt }));
                }
                if inner.in_flight.is_empty() {
                    return Ok(None);
                }
            }
            wait.await;
        }
    }

    async fn settle(&self, id: DeliveryId, settlement: Settlement) -> Result<(), SourceError> {
        let mut inner = self.inner.lock().expect("lock");
        let (body, headers, attempt) =
            inner.in_flight.remove(&id).ok_or_else(|| SourceError::Fatal(format!("unknown delivery {}", id.0)))?;
        // Wake a waiting `next` whatever happens below: the queue or the in-flight set changed.
        self.settled.notify_waiters();
        if inner.fail_settles > 0 {
            inner.fail_settles -= 1;
            inner.queue.push_back((body, headers, attempt));
            return Err(SourceError::Unavailable("connection dropped".into()));
        }
        if let Some(t) = &self.timeline {
            let kind = match &settlement {
                Settlement::Ack => "Ack",
                Settlement::Requeue { .. } => "Requeue",
                Settlement::Release { .. } => "Release",
                Settlement::DeadLetter { .. } => "DeadLetter",
            };
            t.push(format!("settle {kind} #{}", id.0));
        }
        match &settlement {
            Settlement::Requeue { .. } => inner.queue.push_back((body, headers, attempt + 1)),
            Settlement::Release { .. } => inner.queue.push_back((body, headers, attempt)),
            Settlement::DeadLetter { reason } => inner.dead_letters.push((body, reason.clone())),
            Settlement::Ack => {}
        }
        inner.settled.push((id, settlement));
        Ok(())
    }
}
