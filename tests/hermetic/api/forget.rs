//! `POST /api/v1/forget`: every image of the person in a photo is erased (faces from
//! recorded encodings: stand-in photo bytes mapped to the faces `facerec record` saved from
//! the sample images), a dry run erases nothing, bad input is a problem and erases nothing,
//! the route is 501 without an encoder, and each call leaves one audit line.

use super::{DownIndex, Front, multipart, png};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use facerec::adapters::recorded_encoder::{RecordedEncoder, RecordedImage, Recording};
use facerec::api::ApiSettings;
use facerec::config::Secret;
use facerec::face::EncodedImage;
use facerec::hash::ImageHash;
use facerec::ports::{EncodeError, FaceEncoder, FaceIndex};
use facerec_fakes::FakeEncoder;
use facerec_fakes::testkit::fixtures::recording;
use facerec_fakes::testkit::harness::HOST;
use serde_json::{Value, json};
use std::sync::Arc;

/// A photo of Obama that is not stored (its faces are obama3.jpg's).
fn photo() -> Vec<u8> {
    png("photo-of-obama")
}

/// A photo in which the encoder finds no face.
fn faceless() -> Vec<u8> {
    png("a-landscape")
}

/// The recorded encoder, knowing [`photo`] and [`faceless`].
fn encoder() -> Arc<dyn FaceEncoder> {
    let fixtures = recording();
    let obama3 = fixtures.by_name("obama3.jpg").unwrap().clone();
    let images = vec![
        RecordedImage { hash: ImageHash::of_bytes(&photo()), name: "photo".into(), ..obama3.clone() },
        RecordedImage { hash: ImageHash::of_bytes(&faceless()), name: "landscape".into(), faces: vec![], ..obama3 },
    ];
    Arc::new(RecordedEncoder::new(Recording { images, ..fixtures.clone() }))
}

/// The smallest distance between a face of the photo and a face of a sample.
fn distance_to_photo(sample: &str) -> f64 {
    let (a, b) = (recording().by_name("obama3.jpg").unwrap(), recording().by_name(sample).unwrap());
    a.faces
        .iter()
        .flat_map(|x| b.faces.iter().map(move |y| x.encoding.distance(&y.encoding)))
        .fold(f64::INFINITY, f64::min)
}

fn forget(uri: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri).body(Body::from(body)).unwrap()
}

/// The audit lines so far, each with its routing key.
fn audit(front: &Front) -> Vec<(String, String)> {
    front.logs.lines().into_iter().filter(|(_, l)| l.starts_with("forget by photo")).collect()
}

fn hashes(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|m| m["hash"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_photo_erases_every_image_of_the_person_and_a_dry_run_erases_nothing() {
    let front = Front::with_encoder(encoder(), ApiSettings::default());
    let obama = front.store("obama.jpg", &["obama.jpg", "secret-name.jpg"]).await;
    let obama2 = front.store("obama2.jpg", &["obama2.jpg"]).await;
    let biden = front.store("biden.jpg", &["biden.jpg"]).await;
    // The recorded faces: both Obamas within the default tolerance of the photo, Biden far.
    let (d1, d2) = (distance_to_photo("obama.jpg"), distance_to_photo("obama2.jpg"));
    assert!(d1 <= 0.5 && d2 <= 0.5 && distance_to_photo("biden.jpg") > 0.6, "{d1} {d2}");
    let mut person = [(d1, obama.to_string()), (d2, obama2.to_string())];
    person.sort_by(|a, b| a.0.total_cmp(&b.0));
    let nearest_first: Vec<String> = person.iter().map(|(_, h)| h.clone()).collect();

    // Dry run, the photo sent as a form: says what, erases nothing.
    let r = front.call(multipart("/api/v1/forget?dry_run=true", &[("file", Some("me.png"), &photo())])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["dry_run"].clone(), v["tolerance"].clone(), v["photo_faces"].clone()),
        (json!(true), json!(0.5), json!(1))
    );
    assert_eq!(hashes(&v["matched"]), nearest_first);
    assert_eq!(v["erased"], json!([]));
    let first = v["matched"].as_array().unwrap().iter().find(|m| m["hash"] == obama.as_str()).unwrap();
    assert_eq!((first["names"].clone(), first["faces"].clone()), (json!(["obama.jpg", "secret-name.jpg"]), json!(1)));
    assert!((first["distance"].as_f64().unwrap() - d1).abs() < 1e-9);
    for h in [&obama, &obama2, &biden] {
        assert!(front.index.image(h).await.unwrap().is_some(), "the dry run erased {h}");
    }

    // For real, the photo as the raw body.
    let r = front.call(forget("/api/v1/forget", photo())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["dry_run"], json!(false));
    assert_eq!(hashes(&v["matched"]), nearest_first);
    assert_eq!(hashes(&v["erased"]), nearest_first);
    let erased = v["erased"].as_array().unwrap();
    assert!(erased.iter().all(|e| e["erased"] == json!(true) && e["faces"] == json!(1)), "{v}");
    let names: Vec<&Value> = erased.iter().map(|e| &e["names"]).collect();
    assert!(names.contains(&&json!(["obama.jpg", "secret-name.jpg"])) && names.contains(&&json!(["obama2.jpg"])));
    for h in [&obama, &obama2] {
        assert!(front.index.image(h).await.unwrap().is_none(), "{h} is still stored");
        assert_eq!(front.get(&format!("/api/v1/images/{h}")).await.json()["status"], "unknown");
    }
    assert!(front.index.hash_of("secret-name.jpg").await.unwrap().is_none());
    assert!(front.index.image(&biden).await.unwrap().is_some(), "another person was erased");

    // Again: nothing left to match.
    let v = front.call(forget("/api/v1/forget", photo())).await.json();
    assert_eq!((v["matched"].clone(), v["erased"].clone()), (json!([]), json!([])));

    // One audit line per call on <host>.rest.info: hashes and counts, never names.
    let lines = audit(&front);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|(key, _)| key == &format!("{HOST}.rest.info")), "{lines:?}");
    let both = nearest_first.join(" ");
    assert_eq!(
        lines[0].1,
        format!("forget by photo (dry run, tolerance 0.5): would erase 2 images (2 faces, 3 names): {both}")
    );
    assert_eq!(
        lines[1].1,
        // One link between the two: the second image's was gone with the first.
        format!(
            "forget by photo (tolerance 0.5): erased 2 images (2 faces, 3 names, 1 links), 0 already absent: {both}"
        )
    );
    assert_eq!(
        lines[2].1,
        "forget by photo (tolerance 0.5): erased 0 images (0 faces, 0 names, 0 links), 0 already absent"
    );
    assert!(lines.iter().all(|(_, l)| !l.contains("secret-name") && !l.contains("obama")), "{lines:?}");
}

#[tokio::test]
async fn the_tolerance_narrows_what_is_erased() {
    let front = Front::with_encoder(encoder(), ApiSettings::default());
    let obama = front.store("obama.jpg", &["obama.jpg"]).await;
    let obama2 = front.store("obama2.jpg", &["obama2.jpg"]).await;
    let (d1, d2) = (distance_to_photo("obama.jpg"), distance_to_photo("obama2.jpg"));
    assert!((d1 - d2).abs() > 0.01, "{d1} {d2}");
    let (near, far, between) =
        if d1 < d2 { (&obama, &obama2, (d1 + d2) / 2.0) } else { (&obama2, &obama, (d1 + d2) / 2.0) };
    let v = front.call(forget(&format!("/api/v1/forget?tolerance={between}"), photo())).await.json();
    assert_eq!(hashes(&v["erased"]), vec![near.to_string()]);
    assert!(front.index.image(near).await.unwrap().is_none());
    assert!(front.index.image(far).await.unwrap().is_some());
}

#[tokio::test]
async fn bad_photos_and_tolerances_are_problems_and_erase_nothing() {
    let front = Front::with_encoder(encoder(), ApiSettings { max_body_bytes: 100, ..ApiSettings::default() });
    let obama = front.store("obama.jpg", &["obama.jpg"]).await;
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        ("no face", forget("/api/v1/forget", faceless()), StatusCode::UNPROCESSABLE_ENTITY, "no face found"),
        (
            "unknown to the encoder",
            forget("/api/v1/forget", png("stranger")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no recorded encoding",
        ),
        (
            "not an image",
            forget("/api/v1/forget", b"hello, not an image".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not an image",
        ),
        ("empty", forget("/api/v1/forget", Vec::new()), StatusCode::BAD_REQUEST, "empty"),
        (
            "too large",
            forget("/api/v1/forget", png(&"x".repeat(200))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 100 bytes",
        ),
        (
            "a form part too large",
            // Over the whole form's limit too (twice the image limit, headers included),
            // and not announced by a Content-Length.
            multipart("/api/v1/forget", &[("file", Some("a.png"), &png(&"x".repeat(120)))]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "over its size limit",
        ),
        (
            "a form part not an image",
            multipart("/api/v1/forget", &[("file", Some("notes.txt"), b"hello")]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "part 1 (notes.txt) is not an image",
        ),
        ("a form without a file", multipart("/api/v1/forget", &[]), StatusCode::BAD_REQUEST, "no part named \"file\""),
        ("tolerance 0", forget("/api/v1/forget?tolerance=0", photo()), StatusCode::BAD_REQUEST, "tolerance"),
        ("tolerance above 1", forget("/api/v1/forget?tolerance=1.5", photo()), StatusCode::BAD_REQUEST, "tolerance"),
        ("negative tolerance", forget("/api/v1/forget?tolerance=-0.1", photo()), StatusCode::BAD_REQUEST, "tolerance"),
        ("NaN tolerance", forget("/api/v1/forget?tolerance=NaN", photo()), StatusCode::BAD_REQUEST, "tolerance"),
        (
            "tolerance not a number",
            forget("/api/v1/forget?tolerance=half", photo()),
            StatusCode::BAD_REQUEST,
            "bad query",
        ),
        ("dry_run not a bool", forget("/api/v1/forget?dry_run=maybe", photo()), StatusCode::BAD_REQUEST, "bad query"),
    ];
    for (what, request, status, detail) in cases {
        let r = front.call(request).await;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert!(r.detail().contains(detail), "{what}: {detail:?} not in {:?}", r.detail());
    }
    // Two photos in one form (within the size limits).
    let roomy = Front::with_encoder(encoder(), ApiSettings::default());
    let kept = roomy.store("obama.jpg", &["obama.jpg"]).await;
    let r = roomy.call(multipart("/api/v1/forget", &[("file", None, &photo()), ("file", None, &photo())])).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.detail().contains("more than 1 file in one request"), "{}", r.detail());
    assert!(roomy.index.image(&kept).await.unwrap().is_some());
    assert!(front.index.image(&obama).await.unwrap().is_some(), "a refused request erased something");
    assert!(audit(&front).is_empty(), "a refused request was audited as an erase");
    // The limits: tolerance 1 is allowed.
    let r = front.call(forget("/api/v1/forget?tolerance=1&dry_run=true", photo())).await;
    assert_eq!((r.status, hashes(&r.json()["matched"])), (StatusCode::OK, vec![obama.to_string()]));
}

#[tokio::test]
async fn without_an_encoder_the_route_is_501_and_points_to_the_commands_that_can() {
    // `facerec api`: no encoder.
    let front = Front::new();
    let obama = front.store("obama.jpg", &["obama.jpg"]).await;
    let r = front.call(forget("/api/v1/forget", photo())).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    assert!(r.detail().contains("facerec forget --face") && r.detail().contains("facerec serve"), "{}", r.detail());
    assert!(front.index.image(&obama).await.unwrap().is_some());
}

#[tokio::test]
async fn an_unavailable_encoder_or_index_is_503_with_retry_after() {
    let busy = FakeEncoder::new();
    busy.set(&ImageHash::of_bytes(&photo()), Err(EncodeError::Unavailable("pool shutting down".into())));
    let front = Front::with_encoder(Arc::new(busy), ApiSettings::default());
    let obama = front.store("obama.jpg", &["obama.jpg"]).await;
    let r = front.call(forget("/api/v1/forget", photo())).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.header("retry-after").is_some());
    assert!(front.index.image(&obama).await.unwrap().is_some());

    let index = Arc::new(facerec::adapters::embedded_index::EmbeddedIndex::in_memory());
    let front = Front::build(Arc::new(DownIndex), index, ApiSettings::default(), Some(encoder()));
    let r = front.call(forget("/api/v1/forget", photo())).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.header("retry-after").is_some() && r.detail().contains("index"), "{}", r.detail());
}

#[tokio::test]
async fn a_photo_too_large_for_the_encoder_is_413() {
    let big = FakeEncoder::new();
    big.set(&ImageHash::of_bytes(&photo()), Err(EncodeError::OverLimit("40000000 pixels".into())));
    let undecodable = png("truncated");
    big.set(&ImageHash::of_bytes(&undecodable), Err(EncodeError::NotAnImage("truncated PNG".into())));
    let faces = FakeEncoder::new();
    faces.set(
        &ImageHash::of_bytes(&photo()),
        Ok(EncodedImage { width: 1, height: 1, faces: vec![], times: Default::default(), thumbnail: None }),
    );
    let front = Front::with_encoder(Arc::new(big), ApiSettings::default());
    assert_eq!(front.call(forget("/api/v1/forget", photo())).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(front.call(forget("/api/v1/forget", undecodable)).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let front = Front::with_encoder(Arc::new(faces), ApiSettings::default());
    assert_eq!(front.call(forget("/api/v1/forget", photo())).await.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_token_is_required() {
    let settings = ApiSettings { token: Some(Secret::new("s3cret-token")), ..ApiSettings::default() };
    let front = Front::with_encoder(encoder(), settings);
    let obama = front.store("obama.jpg", &["obama.jpg"]).await;
    for auth in [None, Some("Bearer wrong")] {
        let mut request = Request::post("/api/v1/forget");
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        let r = front.call(request.body(Body::from(photo())).unwrap()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    assert!(front.index.image(&obama).await.unwrap().is_some(), "erased without the token");
    let ok = Request::post("/api/v1/forget").header("authorization", "Bearer s3cret-token").body(Body::from(photo()));
    let r = front.call(ok.unwrap()).await;
    assert_eq!((r.status, hashes(&r.json()["erased"])), (StatusCode::OK, vec![obama.to_string()]));
}

#[tokio::test]
async fn the_openapi_document_describes_the_route() {
    let doc = Front::new().get("/api/v1/openapi.json").await.json();
    let op = &doc["paths"]["/api/v1/forget"]["post"];
    for status in ["200", "400", "413", "415", "422", "501", "503"] {
        assert!(op["responses"][status].is_object(), "{status} missing: {op}");
    }
    assert!(op["requestBody"]["content"]["multipart/form-data"].is_object());
    let params: Vec<&str> = op["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(params, ["tolerance", "dry_run"]);
    assert!(doc["components"]["schemas"]["ForgetReport"]["properties"]["erased"].is_object());
}
