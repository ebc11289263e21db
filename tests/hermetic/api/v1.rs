//! `/api/v1`: submissions, records with status, matches nearest first, the OpenAPI document.

use super::{Front, png};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use facerec::hash::ImageHash;
use serde_json::json;

#[tokio::test]
async fn raw_submission_is_202_and_the_record_says_queued_then_done() {
    let front = Front::new();
    let image = png("v1");
    let hash = ImageHash::of_bytes(&image);
    let r = front.get(&format!("/api/v1/images/{hash}")).await;
    assert_eq!(r.json()["status"], "unknown");
    let r = front.post("/api/v1/images?name=holiday.png", image).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json(), json!({"hash": hash.as_str(), "name": "holiday.png", "status": "queued"}));
    assert_eq!(front.queue.accepted()[0].name, "holiday.png");
    let r = front.get(&format!("/api/v1/images/{hash}")).await;
    assert_eq!(r.json()["status"], "queued");

    let obama = front.store("obama.jpg", &["obama.jpg", "b.jpg"]).await;
    front.store("obama2.jpg", &["obama2.jpg"]).await;
    let r = front.get(&format!("/api/v1/images/{obama}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["status"], "done");
    assert_eq!(v["names"], json!(["b.jpg", "obama.jpg"]));
    assert_eq!(v["faces"], 1);
    assert!(v["matches"].as_u64().unwrap() >= 1);
    assert_eq!(v["fingerprint"], "fp-test");
}

#[tokio::test]
async fn matches_are_nearest_first_with_distances_and_a_stricter_tolerance_filters() {
    let front = Front::new();
    let obama = front.store("obama.jpg", &["obama.jpg"]).await;
    for f in ["obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg", "biden.jpg"] {
        front.store(f, &[f]).await;
    }
    let all = front.get(&format!("/api/v1/images/{obama}/matches")).await.json();
    let all = all.as_array().unwrap();
    assert!(all.len() >= 2, "{all:?}");
    let distances: Vec<f64> = all.iter().map(|m| m["distance"].as_f64().unwrap()).collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{distances:?}");
    assert!(all.iter().all(|m| m["names"].as_array().unwrap().len() == 1 && m["hash"].is_string()));
    assert!(!all.iter().any(|m| m["names"][0] == "biden.jpg"));
    let cut = (distances[0] + distances[distances.len() - 1]) / 2.0;
    let strict = front.get(&format!("/api/v1/images/{obama}/matches?tolerance={cut}")).await.json();
    let strict = strict.as_array().unwrap();
    assert!(!strict.is_empty() && strict.len() < all.len());
    assert!(strict.iter().all(|m| m["distance"].as_f64().unwrap() <= cut));
    for bad in ["2", "-0.1", "abc", "NaN"] {
        let r = front.get(&format!("/api/v1/images/{obama}/matches?tolerance={bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = front.get(&format!("/api/v1/images/{}/matches", "0".repeat(64))).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn url_submission_is_202_or_200_when_known() {
    let front = Front::new();
    front.fetcher.set("https://img.example/a.png", Ok(png("u")));
    let r = front.post("/api/v1/urls", r#"{"url": "https://img.example/a.png", "name": "a.png"}"#).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json()["status"], "queued");
    assert_eq!(front.queue.accepted()[0].name, "a.png");
    let known = front.store("obama.jpg", &["https://img.example/o.jpg"]).await;
    let r = front.post("/api/v1/urls", r#"{"url": "https://img.example/o.jpg"}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"hash": known.as_str(), "name": "https://img.example/o.jpg", "status": "done"}));
    assert_eq!(front.post("/api/v1/urls", "{").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_v1_route() {
    let r = Front::new().get("/api/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/api/v1/images", "/api/v1/urls", "/api/v1/images/{hash}", "/api/v1/images/{hash}/matches"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    for schema in ["Problem", "Submitted", "ImageView", "MatchView", "ImageStatus"] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "{schema} missing");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // The token is optional (the server's setting): the bearer scheme or nothing.
    assert_eq!(doc["security"], json!([{"bearer": []}, {}]));
    // Every operation documents the 401 it answers when the server has a token.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let problem = &operation["responses"]["401"]["content"]["application/problem+json"]["schema"]["$ref"];
            assert_eq!(problem, "#/components/schemas/Problem", "{method} {path}: no 401");
        }
    }
}

#[tokio::test]
async fn a_dead_lettered_image_is_failed_with_the_workers_reason() {
    use facerec::orchestrator::{Orchestrator, Outcome, Settings};
    use facerec::ports::{Delivery, DeliveryId};
    let front = Front::new();
    let hash = facerec_fakes::testkit::fixtures::hash_of("obama.jpg");
    // A worker over the same index whose encoder has no result for the image: dead-lettered.
    let worker = Orchestrator::new(
        facerec_fakes::FakeEncoder::new(),
        front.index.clone(),
        front.logs.clone(),
        Settings::for_host("h"),
    );
    let body = facerec_fakes::testkit::message::message(hash.as_str(), "obama.jpg");
    let delivery = Delivery { id: DeliveryId(1), body, headers: Default::default(), attempt: 1 };
    assert!(matches!(worker.process(&delivery).await, Outcome::Rejected { .. }));
    let r = front.get(&format!("/api/v1/images/{hash}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["reason"].as_str().is_some_and(|r| r.contains("no recorded encoding")), "{v}");
    assert!(v["failed_at"].as_u64().is_some_and(|t| t > 1_600_000_000), "{v}");
    // Stored later (sent again and processed): done wins, no reason.
    front.store("obama.jpg", &["obama.jpg"]).await;
    let v = front.get(&format!("/api/v1/images/{hash}")).await.json();
    assert_eq!(v["status"], "done");
    assert!(v.get("reason").is_none(), "{v}");
}

#[tokio::test]
async fn the_image_list_is_newest_first_in_pages_with_a_cursor() {
    let front = Front::new();
    let files = ["obama.jpg", "obama2.jpg", "biden.jpg", "obama3.jpg", "32bit.png"];
    for f in files {
        front.store(f, &[f]).await;
    }
    let mut seen = Vec::new();
    let mut uri = "/api/v1/images?limit=2".to_owned();
    loop {
        let r = front.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        let page = v["images"].as_array().unwrap();
        assert!(page.len() <= 2);
        for image in page {
            assert_eq!(image["status"], "done");
            seen.push(image["names"][0].as_str().unwrap().to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/images?limit=2&cursor={c}"),
            None => break,
        }
    }
    let newest_first: Vec<&str> = files.iter().rev().copied().collect();
    assert_eq!(seen, newest_first);
    let v = front.get("/api/v1/images").await.json();
    assert_eq!(v["images"].as_array().unwrap().len(), 5);
    assert!(v.get("next_cursor").is_none(), "{v}");
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=nonsense", "cursor=999"] {
        front.get(&format!("/api/v1/images?{bad}")).await.assert_problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn delete_erases_an_image_everywhere_idempotently_with_an_audit_line_without_names() {
    let front = Front::new();
    let obama = front.store("obama.jpg", &["obama.jpg", "secret-name.jpg"]).await;
    let obama2 = front.store("obama2.jpg", &["obama2.jpg"]).await;
    let before = front.get(&format!("/api/v1/images/{obama2}/matches")).await.json();
    assert!(before.as_array().unwrap().iter().any(|m| m["hash"] == obama.as_str()), "{before}");

    let delete = |hash: String| Request::delete(format!("/api/v1/images/{hash}")).body(Body::empty()).unwrap();
    let r = front.call(delete(obama.to_string())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"hash": obama.as_str(), "erased": true, "names": ["obama.jpg", "secret-name.jpg"], "faces": 1,
               "matches": r.json()["matches"]})
    );
    assert!(r.json()["matches"].as_u64().unwrap() >= 1);
    // Gone from its record, from the other image's matches, from the course's routes.
    assert_eq!(front.get(&format!("/api/v1/images/{obama}")).await.json()["status"], "unknown");
    let after = front.get(&format!("/api/v1/images/{obama2}/matches")).await.json();
    assert!(!after.as_array().unwrap().iter().any(|m| m["hash"] == obama.as_str()), "{after}");
    assert_eq!(front.get(&format!("/match/{obama2}")).await.json(), json!([]));
    // Idempotent: a second erase says it was unknown.
    let again = front.call(delete(obama.to_string())).await;
    assert_eq!((again.status, again.json()["erased"].clone()), (StatusCode::OK, json!(false)));
    // Audited on the logs exchange with the hash and counts, never the names.
    let lines: Vec<String> = front.logs.lines().into_iter().map(|(_, l)| l).filter(|l| l.contains("erase:")).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains(obama.as_str()) && lines[0].contains("2 names, 1 faces"), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("secret-name")), "{lines:?}");
    // A bad hash is a 400 problem, never a 500.
    front.call(delete("a%20b".into())).await.assert_problem(StatusCode::BAD_REQUEST);
}
