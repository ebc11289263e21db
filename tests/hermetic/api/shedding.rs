//! `FACEREC_API_MAX_QUEUE` (503 + Retry-After while the work queue is too deep, off by
//! default) and `FACEREC_API_CORS_ORIGINS` (no CORS headers unless configured).

use super::{Front, png};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use facerec::api::ApiSettings;

fn shedding_at(max: u64) -> Front {
    Front::with(ApiSettings { max_queue: Some(max), ..ApiSettings::default() })
}

#[tokio::test]
async fn submissions_get_503_with_retry_after_while_the_queue_is_too_deep() {
    let front = shedding_at(10);
    front.queue.set_depth(11);
    for (uri, body) in [("/scan/image/a.png", png("a")), ("/api/v1/images?name=a.png", png("a"))] {
        let r = front.post(uri, body).await;
        r.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.header("retry-after"), Some("5"));
        assert!(r.detail().contains("holds 11 images"), "{}", r.detail());
    }
    // A URL is not even fetched.
    front.fetcher.set("https://img.example/a.png", Ok(png("url")));
    let r = front.post("/scan/url", r#"{"url": "https://img.example/a.png"}"#).await;
    r.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(front.fetcher.calls().is_empty());
    assert!(front.queue.accepted().is_empty());
    // Reads are unaffected.
    let hash = facerec::hash::ImageHash::of_bytes(b"x");
    assert_eq!(front.get(&format!("/match/{hash}")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn at_the_limit_submissions_pass_and_the_depth_is_read_at_most_once_a_second() {
    let front = shedding_at(10);
    front.queue.set_depth(10);
    for i in 0..5 {
        let r = front.post(&format!("/scan/image/{i}.png"), png(&i.to_string())).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(front.queue.accepted().len(), 5);
    assert_eq!(front.queue.depth_reads(), 1);
}

#[tokio::test]
async fn shedding_is_off_by_default() {
    let front = Front::new();
    front.queue.set_depth(1_000_000);
    assert_eq!(front.post("/scan/image/a.png", png("a")).await.status, StatusCode::OK);
    assert_eq!(front.queue.depth_reads(), 0);
}

fn preflight(origin: &str) -> Request<Body> {
    Request::options("/api/v1/images")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn no_cors_headers_unless_origins_are_configured() {
    let front = Front::new();
    let r = front.call(preflight("https://app.example")).await;
    assert!(r.header("access-control-allow-origin").is_none());
    assert_ne!(r.status, StatusCode::NO_CONTENT);
    let get = Request::get("/healthz").header("origin", "https://app.example").body(Body::empty()).unwrap();
    assert!(front.call(get).await.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn configured_origins_get_cors_and_others_do_not() {
    let settings = ApiSettings {
        cors_origins: vec!["https://app.example".into()],
        token: Some(facerec::config::Secret::new("t0ken")),
        ..ApiSettings::default()
    };
    let front = Front::with(settings);
    // The preflight carries no token: it is answered before the token check.
    let r = front.call(preflight("https://app.example")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    assert!(r.header("access-control-allow-methods").is_some_and(|m| m.contains("POST")));
    assert!(r.header("access-control-allow-headers").is_some_and(|h| h.contains("authorization")));
    let get = Request::get("/healthz").header("origin", "https://app.example").body(Body::empty()).unwrap();
    assert_eq!(front.call(get).await.header("access-control-allow-origin"), Some("https://app.example"));
    let r = front.call(preflight("https://evil.example")).await;
    assert!(r.header("access-control-allow-origin").is_none());
    assert_ne!(r.status, StatusCode::NO_CONTENT);
}
