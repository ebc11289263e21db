//! `/api/v1`: submissions, records with status, matches nearest first, the OpenAPI document.

use super::{Front, png};
use axum::http::StatusCode;
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
}
