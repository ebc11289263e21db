//! The production queue adapter with no broker behind it (a closed port): submissions
//! fail within seconds as 503 + Retry-After, and nothing is reported accepted.

use super::{Front, png};
use axum::http::StatusCode;
use facerec::adapters::amqp::AmqpSettings;
use facerec::adapters::amqp::queue::AmqpQueue;
use facerec::api::{Api, ApiPorts, ApiSettings};
use facerec::config::ServiceUrl;
use facerec::hash::ImageHash;
use facerec::ports::{ImageQueue, QueueError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt as _;

fn closed_port_settings() -> AmqpSettings {
    // Bind then drop: nothing listens on that port now.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url =
        ServiceUrl::parse("RABBITMQ_URL", &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"), &["amqp"]).unwrap();
    AmqpSettings::new(url, "test-host")
}

#[tokio::test]
async fn the_amqp_queue_fails_fast_when_the_broker_is_unreachable() {
    let queue = AmqpQueue::start(closed_port_settings());
    let started = Instant::now();
    let r = queue.submit(&ImageHash::of_bytes(b"x"), "x.png", &png("x")).await;
    assert!(matches!(r, Err(QueueError::Unavailable(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(!queue.is_connected());
    queue.close().await;
}

#[tokio::test]
async fn the_router_over_an_unreachable_broker_answers_503_and_accepts_nothing() {
    let fakes = Front::new();
    let queue = Arc::new(AmqpQueue::start(closed_port_settings()));
    let api = Api::new(
        ApiPorts {
            index: fakes.index.clone(),
            queue: queue.clone(),
            fetcher: Arc::new(fakes.fetcher.clone()),
            logs: Arc::new(fakes.logs.clone()),
            readiness: fakes.down.clone(),
            encoder: None,
        },
        ApiSettings { hostname: "test-host".into(), ..ApiSettings::default() },
    );
    let router = facerec::api::router(api);
    let request = axum::http::Request::post("/scan/image/a.png").body(axum::body::Body::from(png("a"))).unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let lines = fakes.logs.lines();
    assert!(
        lines.iter().any(|(k, l)| k == "test-host.rest.info" && l.starts_with("POST /scan/image/a.png -> 503")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|(_, l)| l.contains("not queued")), "{lines:?}");
    queue.close().await;
}
