//! The listener: at most [`ServerLimits::max_connections`] connections at once, a deadline
//! for each request's headers (which also ends idle keep-alive connections), and a graceful
//! stop on `shutdown`.
//!
//! When every slot is taken, a new connection evicts the oldest *idle* one (no request in
//! flight: a half-sent request, or a kept-alive connection between requests) instead of
//! waiting behind it. A flood of half-sent requests (slowloris) therefore cannot hold the
//! slots for the header deadline: a probe from the kubelet or Prometheus, whose request
//! arrives at once, is served in milliseconds. Connections busy with a request are never
//! evicted; when all are busy, new ones wait in the kernel's backlog.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and to start the next request on
    /// a kept-alive connection.
    pub header_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self { max_connections: 1024, header_timeout: Duration::from_secs(10) }
    }
}

/// One open connection, as the accept loop sees it.
struct Open {
    id: u64,
    /// Requests being answered on it (a streamed body counts until it ends).
    busy: Arc<AtomicUsize>,
    /// Cancelled to evict it.
    evict: CancellationToken,
}

/// Open connections, oldest first.
#[derive(Default)]
struct Connections {
    open: Mutex<VecDeque<Open>>,
    next_id: AtomicU64,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Open>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self) -> (u64, Arc<AtomicUsize>, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (busy, evict) = (Arc::new(AtomicUsize::new(0)), CancellationToken::new());
        self.lock().push_back(Open { id, busy: busy.clone(), evict: evict.clone() });
        (id, busy, evict)
    }

    fn remove(&self, id: u64) {
        self.lock().retain(|c| c.id != id);
    }

    /// Evicts the oldest connection with no request in flight; false when all are busy.
    fn evict_oldest_idle(&self) -> bool {
        let mut open = self.lock();
        let Some(at) = open.iter().position(|c| c.busy.load(Ordering::Acquire) == 0) else { return false };
        if let Some(c) = open.remove(at) {
            c.evict.cancel();
        }
        true
    }
}

/// Counts a request as in flight until its response body has been sent.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(busy: &Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::AcqRel);
        Self(busy.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it ends.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown`; returns when every connection ended
/// (or after a grace period of 10 s).
pub async fn serve(listener: TcpListener, router: Router, limits: ServerLimits, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = Arc::new(Connections::default());
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Full: make room by closing the oldest idle connection, or wait for one to end.
                if connections.evict_oldest_idle() {
                    tracing::debug!(%peer, "connection limit reached: evicted the oldest idle connection");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let (id, busy, evict) = connections.add();
        let router = TowerToHyperService::new(router.clone());
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let in_flight = InFlight::new(&busy);
            let answer = router.call(request);
            async move {
                let response = answer.await?;
                Ok::<Response, std::convert::Infallible>(
                    response.map(|body| Body::new(Tracked { body, _in_flight: in_flight })),
                )
            }
        });
        let shutdown = shutdown.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                r = connection.as_mut() => r,
                () = evict.cancelled() => Ok(()),
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            connections.remove(id);
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    // Every connection holds a slot: all slots back means all connections ended.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all)).await.is_err() {
        tracing::warn!("connections still open after 10 s; stopping anyway");
    }
}

/// Binds `addr` (port 0: any free port).
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
