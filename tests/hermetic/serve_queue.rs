//! The in-process queue of `facerec serve` (`adapters::memory_queue`): both ends of the
//! work queue, with the broker's settlement semantics, and a 503 from the API when full.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use facerec::adapters::embedded_index::EmbeddedIndex;
use facerec::adapters::memory_queue::{MemoryQueue, QueueLimits, Unprocessed};
use facerec::adapters::stderr_logs::StderrLogs;
use facerec::api::ports::Readiness;
use facerec::api::{Api, ApiPorts, ApiSettings};
use facerec::hash::ImageHash;
use facerec::ports::{Delivery, FaceIndex, ImageQueue, MessageSource, Settlement};
use facerec_fakes::FakeFetcher;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

fn queue(max_images: usize) -> (Arc<MemoryQueue>, Arc<EmbeddedIndex>) {
    let index = Arc::new(EmbeddedIndex::in_memory());
    (Arc::new(MemoryQueue::new(QueueLimits { max_images, max_bytes: 1 << 20 }, index.clone())), index)
}

fn h(tag: &str) -> ImageHash {
    ImageHash::of_bytes(tag.as_bytes())
}

async fn take(q: &MemoryQueue) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), q.next()).await.expect("a delivery").unwrap().unwrap()
}

#[tokio::test]
async fn a_delivery_carries_the_image_its_name_and_hash_and_an_ack_frees_its_room() {
    let (q, _) = queue(1);
    q.submit(&h("a"), "a.png", b"aaa").await.unwrap();
    assert_eq!(q.depth().await.unwrap(), 1);
    let d = take(&q).await;
    assert_eq!((d.body.as_slice(), d.attempt), (&b"aaa"[..], 1));
    assert_eq!(d.headers["name"], "a.png");
    assert_eq!(d.headers["hash"], h("a").as_str());
    // Taken but not settled: it still holds its place.
    assert_eq!(q.depth().await.unwrap(), 0);
    assert!(q.submit(&h("b"), "b.png", b"b").await.is_err());
    q.settle(d.id, Settlement::Ack).await.unwrap();
    q.submit(&h("b"), "b.png", b"b").await.unwrap();
    // Settled once only.
    assert!(q.settle(d.id, Settlement::Ack).await.is_err());
}

#[tokio::test]
async fn requeue_puts_it_back_last_with_the_attempt_raised_and_release_without() {
    let (q, _) = queue(2);
    q.submit(&h("a"), "a.png", b"a").await.unwrap();
    q.submit(&h("b"), "b.png", b"b").await.unwrap();
    let a = take(&q).await;
    // Full, yet a requeue needs no room: it never fails.
    q.settle(a.id, Settlement::Requeue { reason: "index down".into() }).await.unwrap();
    let b = take(&q).await;
    assert_eq!(b.headers["name"], "b.png", "the requeued one went to the back");
    let a = take(&q).await;
    assert_eq!((a.headers["name"].as_str(), a.attempt), ("a.png", 2));
    q.settle(a.id, Settlement::Release { reason: "outage".into() }).await.unwrap();
    let a = take(&q).await;
    assert_eq!(a.attempt, 2, "a release counts no attempt");
    q.settle(a.id, Settlement::Ack).await.unwrap();
    q.settle(b.id, Settlement::Ack).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(100), q.next()).await.is_err(), "nothing left");
}

#[tokio::test]
async fn a_dead_letter_is_recorded_in_the_index_with_its_reason_and_not_delivered_again() {
    let (q, index) = queue(1);
    q.submit(&h("a"), "a.png", b"a").await.unwrap();
    let d = take(&q).await;
    q.settle(d.id, Settlement::DeadLetter { reason: "not a decodable image: truncated".into() }).await.unwrap();
    let failure = index.failure(&h("a")).await.unwrap().expect("recorded");
    assert_eq!(failure.reason, "not a decodable image: truncated");
    assert_eq!(q.dead_lettered(), 1);
    assert!(tokio::time::timeout(Duration::from_millis(100), q.next()).await.is_err());
    q.submit(&h("b"), "b.png", b"b").await.expect("its room is free again");
}

#[tokio::test]
async fn a_waiting_submission_gets_in_once_room_frees_and_close_hands_back_what_was_never_taken() {
    let (q, _) = queue(1);
    q.submit(&h("a"), "a.png", b"a").await.unwrap();
    let stop = CancellationToken::new();
    let waiting = {
        let (q, stop) = (q.clone(), stop.clone());
        tokio::spawn(async move { q.submit_waiting(&h("b"), "b.png", b"b", &stop).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "waits while full");
    let a = take(&q).await;
    q.settle(a.id, Settlement::Ack).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap());

    let left = q.close();
    assert_eq!(left, [Unprocessed { hash: h("b"), name: "b.png".into() }]);
    assert!(q.next().await.unwrap().is_none(), "closed: the runner ends");
    assert!(q.submit(&h("c"), "c.png", b"c").await.is_err());
}

struct Ready;
impl Readiness for Ready {
    fn not_ready(&self) -> Option<String> {
        None
    }
}

#[tokio::test]
async fn the_api_answers_503_with_retry_after_while_the_queue_is_full() {
    let (q, index) = queue(1);
    let api = Api::new(
        ApiPorts {
            index,
            queue: q.clone(),
            fetcher: Arc::new(FakeFetcher::new()),
            logs: Arc::new(StderrLogs),
            readiness: Arc::new(Ready),
            encoder: None,
        },
        ApiSettings::default(),
    );
    let router = facerec::api::router(api);
    let post = |name: &str, body: &'static [u8]| {
        Request::post(format!("/api/v1/images?name={name}")).body(Body::from(body)).unwrap()
    };
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRone";
    let first = router.clone().oneshot(post("one.png", png)).await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let second = router.clone().oneshot(post("two.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRtwo")).await.unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers()["retry-after"], "5");
    assert_eq!(second.headers()["content-type"], "application/problem+json");
    let body = axum::body::to_bytes(second.into_body(), usize::MAX).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("queue is full"), "{body:?}");
    // Only the accepted one is in the queue.
    let d = take(&q).await;
    assert_eq!(d.headers["name"], "one.png");
    q.settle(d.id, Settlement::Ack).await.unwrap();
    let third = router.oneshot(post("two.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRtwo")).await.unwrap();
    assert_eq!(third.status(), StatusCode::ACCEPTED);
}
