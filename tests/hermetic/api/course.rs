//! The course's routes: exact answers, what is queued, what is logged.

use super::{Front, png};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use facerec::hash::ImageHash;
use serde_json::json;

#[tokio::test]
async fn the_page_is_html() {
    let r = Front::new().get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("/scan/image/"));
}

#[tokio::test]
async fn scan_image_answers_the_sha256_and_queues_the_image_under_its_file_name() {
    let front = Front::new();
    let image = png("a");
    for content_type in [Some("image/jpg"), Some("application/octet-stream"), None] {
        let mut request = Request::post("/scan/image/photo%20one.jpg");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let r = front.call(request.body(Body::from(image.clone())).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{content_type:?}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json(), json!({"hash": ImageHash::of_bytes(&image).as_str()}));
    }
    let accepted = front.queue.accepted();
    assert_eq!(accepted.len(), 3);
    assert_eq!(accepted[0].name, "photo one.jpg");
    assert_eq!(accepted[0].image, image);
    assert_eq!(accepted[0].hash.as_str().len(), 64);
    let lines = front.logs.lines();
    assert!(
        lines
            .iter()
            .any(|(k, l)| k == "test-host.rest.info" && l.starts_with("POST /scan/image/photo%20one.jpg -> 200")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|(k, l)| k == "test-host.rest.debug" && l.contains("queued")), "{lines:?}");
}

#[tokio::test]
async fn scan_url_fetches_once_and_queues_under_the_url_then_answers_from_db1() {
    let front = Front::new();
    let url = "http://images.example/obama.jpg";
    let image = png("obama");
    front.fetcher.set(url, Ok(image.clone()));
    // What jsonpickle.encode({"url": url}) writes.
    let body = format!(r#"{{"url": "{url}"}}"#);
    let r = front.post("/scan/url", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"hash": ImageHash::of_bytes(&image).as_str()}));
    assert_eq!(front.fetcher.calls(), [url]);
    assert_eq!(front.queue.accepted()[0].name, url);

    // Once a worker recorded the URL in db 1, it is answered without fetching.
    let known = front.store("obama.jpg", &[url]).await;
    let r = front.post("/scan/url", body).await;
    assert_eq!(r.json(), json!({"hash": known.as_str()}));
    assert_eq!(front.fetcher.calls().len(), 1, "a known URL is not fetched again");
    assert_eq!(front.queue.accepted().len(), 1);
}

#[tokio::test]
async fn match_lists_every_name_of_every_matching_image_sorted() {
    let front = Front::new();
    let obama = front.store("obama.jpg", &["obama.jpg"]).await;
    front.store("obama2.jpg", &["obama2.jpg", "another name.jpg"]).await;
    let biden = front.store("biden.jpg", &["biden.jpg"]).await;
    let r = front.get(&format!("/match/{obama}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<String> = serde_json::from_value(r.json()).unwrap();
    assert!(names.contains(&"obama2.jpg".to_owned()) && names.contains(&"another name.jpg".to_owned()), "{names:?}");
    assert!(!names.contains(&"biden.jpg".to_owned()) && !names.contains(&"obama.jpg".to_owned()), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let r = front.get(&format!("/match/{biden}")).await;
    assert_eq!(r.json(), json!([]), "no other image shares biden's face");
}

#[tokio::test]
async fn match_of_an_unknown_or_faceless_image_is_an_empty_list() {
    let front = Front::new();
    let r = front.get(&format!("/match/{}", "0".repeat(64))).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!([])));
    let faceless = ImageHash::of_bytes(b"no faces");
    let image = facerec::ports::NewImage::bare(faceless.clone(), "empty.jpg", vec![], "fp");
    facerec::ports::FaceIndex::add_image(&*front.index, &image, 0.6).await.unwrap();
    let r = front.get(&format!("/match/{faceless}")).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!([])));
}
