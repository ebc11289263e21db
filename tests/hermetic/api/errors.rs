//! Bad input is a 4xx problem+json with a detail, never a 500; a failed dependency is a
//! 503 with Retry-After and nothing reported accepted; the token guards the API routes.

use super::{DownIndex, Front, png};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use facerec::adapters::embedded_index::EmbeddedIndex;
use facerec::api::ApiSettings;
use facerec::api::ports::FetchError;
use facerec::config::Secret;
use facerec::ports::QueueError;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let front = Front::new();
    for path in ["/nope", "/scan", "/scan/image/a/b", "/match", "/api/v2/images", "/api/v1/images/h/x"] {
        let r = front.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    for (method, path) in [("GET", "/scan/image/a.jpg"), ("DELETE", "/match/abc"), ("PUT", "/scan/url"), ("POST", "/")]
    {
        let r = front.call(Request::builder().method(method).uri(path).body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_whether_announced_or_not() {
    let front = Front::with(ApiSettings { max_body_bytes: 100, ..ApiSettings::default() });
    let big = png(&"x".repeat(200));
    let r = front.post("/scan/image/a.jpg", big.clone()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let announced =
        Request::post("/scan/image/a.jpg").header("content-length", "1000000").body(Body::from(big)).unwrap();
    assert_eq!(front.call(announced).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = front.post("/api/v1/images?name=a", png(&"y".repeat(200))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(front.queue.accepted().is_empty());
}

#[tokio::test]
async fn bad_names_and_bodies_are_400_or_415() {
    let front = Front::new();
    let long = "n".repeat(2000);
    for (path, body, status) in [
        ("/scan/image/a%0Ab.jpg", png("a"), StatusCode::BAD_REQUEST),
        ("/scan/image/a%1B%5B31m.jpg", png("a"), StatusCode::BAD_REQUEST),
        (&*format!("/scan/image/{long}"), png("a"), StatusCode::BAD_REQUEST),
        ("/scan/image/%FF%FE.jpg", png("a"), StatusCode::BAD_REQUEST),
        ("/scan/image/empty.jpg", vec![], StatusCode::BAD_REQUEST),
        ("/scan/image/text.jpg", b"hello, not an image".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("/api/v1/images", png("a"), StatusCode::BAD_REQUEST),
        ("/api/v1/images?name=", png("a"), StatusCode::BAD_REQUEST),
        ("/api/v1/images?name=a%00b", png("a"), StatusCode::BAD_REQUEST),
    ] {
        let r = front.post(path, body).await;
        assert_eq!(r.status, status, "{}: {}", &path[..path.len().min(40)], r.text());
    }
    assert!(front.queue.accepted().is_empty());
    let r = front.get(&format!("/match/{}", "h".repeat(300))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.detail().contains("hash"), "{}", r.detail());
}

#[tokio::test]
async fn bad_url_requests_are_400_and_fetch_failures_have_their_own_status() {
    let front = Front::new();
    for body in [
        "not json".to_owned(),
        "{}".into(),
        r#"{"url": 5}"#.into(),
        r#"["http://a/"]"#.into(),
        r#"{"url": ""}"#.into(),
        r#"{"url": "http://a/\n.jpg"}"#.into(),
        format!(r#"{{"url": "http://a/{}"}}"#, "x".repeat(3000)),
    ] {
        let r = front.post("/scan/url", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", &body[..body.len().min(40)]);
    }
    for (url, result, status) in [
        ("http://refused/", Err(FetchError::Refused("10.0.0.1 is private".into())), StatusCode::BAD_REQUEST),
        ("ftp://x/", Err(FetchError::InvalidUrl("scheme".into())), StatusCode::BAD_REQUEST),
        ("http://down/", Err(FetchError::Unreachable("refused".into())), StatusCode::BAD_GATEWAY),
        ("http://404/", Err(FetchError::BadResponse("404".into())), StatusCode::BAD_GATEWAY),
        ("http://big/", Err(FetchError::TooLarge { limit: 10 }), StatusCode::PAYLOAD_TOO_LARGE),
        ("http://html/", Err(FetchError::NotAnImage), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("http://text/", Ok(b"<html>".to_vec()), StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ] {
        front.fetcher.set(url, result);
        let r = front.post("/scan/url", format!(r#"{{"url": "{url}"}}"#)).await;
        assert_eq!(r.status, status, "{url}: {}", r.text());
    }
    assert!(front.queue.accepted().is_empty());
}

#[tokio::test]
async fn broker_down_is_503_with_retry_after_and_nothing_accepted_until_it_returns() {
    let front = Front::new();
    front.fetcher.set("http://a/x.jpg", Ok(png("x")));
    front.queue.fail_with(Some(QueueError::Unavailable("connection refused".into())));
    for r in [
        front.post("/scan/image/a.jpg", png("a")).await,
        front.post("/scan/url", r#"{"url": "http://a/x.jpg"}"#).await,
        front.post("/api/v1/images?name=a", png("a")).await,
    ] {
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("5"));
        assert!(r.detail().contains("not queued"), "{}", r.detail());
    }
    assert_eq!((front.queue.accepted().len(), front.queue.refused()), (0, 3));
    front.queue.fail_with(Some(QueueError::Rejected("nack".into())));
    assert_eq!(front.post("/scan/image/a.jpg", png("a")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    front.queue.fail_with(None);
    assert_eq!(front.post("/scan/image/a.jpg", png("a")).await.status, StatusCode::OK);
    assert_eq!(front.queue.accepted().len(), 1);
}

#[tokio::test]
async fn index_down_is_503_on_reads() {
    let front = Front::over(Arc::new(DownIndex), Arc::new(EmbeddedIndex::in_memory()), ApiSettings::default());
    for path in ["/match/abc", "/api/v1/images/abc", "/api/v1/images/abc/matches"] {
        let r = front.get(path).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(r.header("retry-after").is_some());
    }
    let r = front.post("/scan/url", r#"{"url": "http://a/x.jpg"}"#).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_token_guards_the_api_routes_and_leaves_health_open() {
    let settings = ApiSettings { token: Some(Secret::new("s3cret-token")), ..ApiSettings::default() };
    let front = Front::with(settings);
    for (method, path) in [
        ("POST", "/scan/image/a.jpg"),
        ("POST", "/scan/url"),
        ("GET", "/match/abc"),
        ("POST", "/api/v1/images?name=a"),
        ("GET", "/api/v1/images/abc"),
        ("DELETE", "/api/v1/images/abc"),
        ("POST", "/api/v1/forget"),
        ("GET", "/api/v1/openapi.json"),
    ] {
        for auth in
            [None, Some("Bearer wrong"), Some("Bearer s3cret-toke"), Some("s3cret-token"), Some("Basic s3cret-token")]
        {
            let mut request = Request::builder().method(method).uri(path);
            if let Some(a) = auth {
                request = request.header("authorization", a);
            }
            let r = front.call(request.body(Body::from(png("a"))).unwrap()).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path} {auth:?}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
    }
    let ok = Request::get("/match/abc").header("authorization", "Bearer s3cret-token").body(Body::empty()).unwrap();
    assert_eq!(front.call(ok).await.status, StatusCode::OK);
    for path in ["/healthz", "/readyz", "/metrics", "/"] {
        assert_eq!(front.get(path).await.status, StatusCode::OK, "{path}");
    }
    assert!(front.queue.accepted().is_empty());
}

#[tokio::test]
async fn readiness_and_metrics() {
    let front = Front::new();
    assert_eq!(front.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(front.get("/readyz").await.status, StatusCode::OK);
    front.down.0.store(true, Ordering::Relaxed);
    let r = front.get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.detail().contains("broker link down"));
    front.post("/scan/image/a.jpg", png("a")).await;
    front.get("/nope").await;
    let m = front.get("/metrics").await.text();
    for series in [
        r#"facerec_api_requests_total{route="/scan/image/{filename}",status="200"} 1"#,
        r#"facerec_api_requests_total{route="unmatched",status="404"} 1"#,
        r#"facerec_api_submissions_total{outcome="accepted"} 1"#,
        "facerec_api_broker_up 0",
    ] {
        assert!(m.contains(series), "{series} missing from\n{m}");
    }
}
