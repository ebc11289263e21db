//! `/api/v1` for the page: layout and thumbnail in the image view, the thumbnail route,
//! people, the event stream, multipart uploads.

use super::{Front, multipart, png};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use facerec::hash::ImageHash;
use facerec::ports::{FaceIndex, NewImage};
use http_body_util::BodyExt as _;
use serde_json::json;
use std::time::Duration;
use tower::ServiceExt as _;

/// A small real JPEG (the API never decodes it; the page shows it).
fn jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(8, 10, image::Rgb([200, 100, 50]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}

#[tokio::test]
async fn the_image_view_has_size_boxes_and_says_whether_a_thumbnail_exists() {
    let front = Front::new();
    let obama = front.store_with("obama.jpg", &["obama.jpg"], Some(jpeg())).await;
    let v = front.get(&format!("/api/v1/images/{obama}")).await.json();
    let face = &facerec_fakes::testkit::fixtures::encoded("obama.jpg").faces[0];
    assert_eq!((v["width"].clone(), v["height"].clone()), (json!(910), json!(1137)));
    assert_eq!(
        v["boxes"],
        json!([{"top": face.bbox.top, "right": face.bbox.right, "bottom": face.bbox.bottom, "left": face.bbox.left,
                "id": face.encoding.id()}])
    );
    assert_eq!(v["thumbnail"], true);
    // The list shows the same view.
    let list = front.get("/api/v1/images").await.json();
    assert_eq!(list["images"][0], v);

    // Stored by an older worker: no layout, no thumbnail.
    let hash = facerec_fakes::testkit::fixtures::hash_of("biden.jpg");
    let old = NewImage::bare(hash.clone(), "biden.jpg", vec![face.encoding], "fp");
    front.index.add_image(&old, 0.6).await.unwrap();
    let v = front.get(&format!("/api/v1/images/{hash}")).await.json();
    assert_eq!((v.get("width"), v.get("height")), (None, None));
    assert_eq!((v["boxes"].clone(), v["thumbnail"].clone()), (json!([]), json!(false)));
    // Unknown: the same shape.
    let v = front.get(&format!("/api/v1/images/{}", "0".repeat(64))).await.json();
    assert_eq!(
        (v["status"].clone(), v["boxes"].clone(), v["thumbnail"].clone()),
        (json!("unknown"), json!([]), json!(false))
    );
}

#[tokio::test]
async fn the_thumbnail_route_serves_the_jpeg_cacheably_or_a_404_problem() {
    let front = Front::new();
    let thumb = jpeg();
    let obama = front.store_with("obama.jpg", &["obama.jpg"], Some(thumb.clone())).await;
    let r = front.get(&format!("/api/v1/images/{obama}/thumbnail")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.header("cache-control"), Some("private, max-age=31536000, immutable"));
    assert_eq!(r.body, thumb);

    let plain = front.store("obama2.jpg", &["obama2.jpg"]).await;
    let r = front.get(&format!("/api/v1/images/{plain}/thumbnail")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.detail().contains(plain.as_str()), "{}", r.detail());
    let r = front.get(&format!("/api/v1/images/{}/thumbnail", "0".repeat(64))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = front.get(&format!("/api/v1/images/{}/thumbnail", "a".repeat(1000))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_smaller_thumbnail_is_scaled_down_from_the_stored_one_and_never_up() {
    let front = Front::new();
    let photo = image::RgbImage::from_fn(205, 256, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut stored = Vec::new();
    image::DynamicImage::ImageRgb8(photo)
        .write_to(&mut std::io::Cursor::new(&mut stored), image::ImageFormat::Jpeg)
        .unwrap();
    let hash = front.store_with("obama.jpg", &["obama.jpg"], Some(stored.clone())).await;
    let size = |bytes: &[u8]| {
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).expect("a JPEG");
        (img.width(), img.height())
    };

    let r = front.get(&format!("/api/v1/images/{hash}/thumbnail?px=160")).await;
    assert_eq!((r.status, r.header("content-type")), (StatusCode::OK, Some("image/jpeg")));
    assert_eq!(r.header("cache-control"), Some("private, max-age=31536000, immutable"));
    assert_eq!(size(&r.body), (128, 160));
    assert!(r.body.len() < stored.len(), "{} bytes, stored {}", r.body.len(), stored.len());
    // As large as stored or larger: the stored bytes themselves.
    for px in [256, 4096] {
        let r = front.get(&format!("/api/v1/images/{hash}/thumbnail?px={px}")).await;
        assert_eq!((r.status, r.body == stored), (StatusCode::OK, true), "px={px}");
    }
    for bad in ["0", "4097", "-1", "big"] {
        let r = front.get(&format!("/api/v1/images/{hash}/thumbnail?px={bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "px={bad}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "px={bad}");
    }
}

#[tokio::test]
async fn the_thumbnail_route_is_503_when_the_index_is_down() {
    let index = std::sync::Arc::new(facerec::adapters::embedded_index::EmbeddedIndex::in_memory());
    let front = Front::over(std::sync::Arc::new(super::DownIndex), index, Default::default());
    let r = front.get(&format!("/api/v1/images/{}/thumbnail", "0".repeat(64))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = front.get("/api/v1/people").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn people_groups_faces_of_linked_images_into_two_persons() {
    let front = Front::new();
    let thumb = jpeg();
    let obama = front.store_with("obama.jpg", &["obama.jpg", "barack.jpg"], Some(thumb.clone())).await;
    let obama2 = front.store("obama2.jpg", &["obama2.jpg"]).await;
    let obama3 = front.store("obama3.jpg", &["obama3.jpg"]).await;
    let biden = front.store_with("biden.jpg", &["biden.jpg"], Some(thumb)).await;

    let people = front.get("/api/v1/people").await.json()["people"].clone();
    let people = people.as_array().unwrap();
    assert_eq!(people.len(), 2, "{people:#?}");
    // Largest first; the shown face is the one whose image has a thumbnail, and its image
    // comes first (nearest to itself).
    let first = &people[0];
    assert_eq!(first["images"][0], obama.as_str());
    let mut images: Vec<&str> = first["images"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    images.sort_unstable();
    let mut want = vec![obama.as_str(), obama2.as_str(), obama3.as_str()];
    want.sort_unstable();
    assert_eq!(images, want);
    assert_eq!(first["names"], json!(["barack.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg"]));
    let face = &facerec_fakes::testkit::fixtures::encoded("obama.jpg").faces[0];
    assert_eq!(first["face"]["hash"], obama.as_str());
    assert_eq!(first["face"]["box"]["id"], face.encoding.id());
    assert_eq!(first["face"]["box"]["top"], face.bbox.top);
    assert_eq!((first["face"]["width"].clone(), first["face"]["height"].clone()), (json!(910), json!(1137)));
    assert_eq!(people[1]["images"], json!([biden.as_str()]));
    assert_eq!(people[1]["face"]["hash"], biden.as_str());

    // A tolerance stricter than every link: each image is its own person.
    let strict = front.get("/api/v1/people?tolerance=0.01").await.json();
    assert_eq!(strict["people"].as_array().unwrap().len(), 4);
    // `limit` bounds the images considered (the newest).
    let one = front.get("/api/v1/people?limit=1").await.json();
    assert_eq!(one["people"], json!([{"images": [biden.as_str()], "names": ["biden.jpg"], "face": people[1]["face"]}]));
    for bad in ["tolerance=2", "tolerance=-1", "tolerance=x", "limit=0", "limit=1001", "limit=-3"] {
        let r = front.get(&format!("/api/v1/people?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// Reads the event stream until `want` appears in it (or panics after 30 s of test time).
async fn read_until(body: &mut Body, want: &str) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !text.contains(want) {
        let frame =
            tokio::time::timeout_at(deadline, body.frame()).await.unwrap_or_else(|_| panic!("no {want:?} in {text:?}"));
        let frame = frame.expect("stream ended").unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text
}

#[tokio::test(start_paused = true)]
async fn events_announce_a_stored_image_and_a_failed_one_and_keep_alive() {
    let front = Front::new();
    let before = front.store("biden.jpg", &["biden.jpg"]).await;
    let response =
        front.router.clone().oneshot(Request::get("/api/v1/events").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // Let the poller take its baseline (what is stored already is not news).
    tokio::time::sleep(Duration::from_millis(10)).await;

    let obama = front.store("obama.jpg", &["obama.jpg"]).await;
    let text = read_until(&mut body, obama.as_str()).await;
    let event = text.split("\n\n").find(|e| e.contains(obama.as_str())).unwrap();
    assert!(event.starts_with("event: image\ndata: "), "{event:?}");
    let view: serde_json::Value = serde_json::from_str(event.trim_start_matches("event: image\ndata: ")).unwrap();
    assert_eq!(
        (view["hash"].clone(), view["status"].clone(), view["faces"].clone()),
        (json!(obama.as_str()), json!("done"), json!(1))
    );
    assert!(!text.contains(before.as_str()), "an image stored before subscribing was announced: {text}");

    // An image queued through this API and dead-lettered by the workers.
    let image = png("doomed");
    let r = front.post("/api/v1/images?name=doomed.png", image.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let doomed = ImageHash::of_bytes(&image);
    front.index.record_failure(&doomed, "not a decodable image").await.unwrap();
    let text = read_until(&mut body, doomed.as_str()).await;
    let event = text.split("\n\n").find(|e| e.contains(doomed.as_str())).unwrap();
    let view: serde_json::Value = serde_json::from_str(event.trim_start_matches("event: image\ndata: ")).unwrap();
    assert_eq!((view["status"].clone(), view["reason"].clone()), (json!("failed"), json!("not a decodable image")));

    // Nothing happens for a while: a keep-alive comment.
    read_until(&mut body, ": keep-alive\n").await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_several_poll_windows_is_announced_whole_and_erasing_the_newest_makes_nothing_old_new() {
    use facerec::api::v1::events::WINDOW;
    let front = Front::new();
    let add = |name: String| {
        let index = front.index.clone();
        async move {
            let hash = ImageHash::of_bytes(name.as_bytes());
            index.add_image(&NewImage::bare(hash.clone(), format!("{name}.jpg"), vec![], "fp"), 0.6).await.unwrap();
            hash
        }
    };
    for n in 0..30 {
        add(format!("old{n}")).await;
    }
    let response =
        front.router.clone().oneshot(Request::get("/api/v1/events").body(Body::empty()).unwrap()).await.unwrap();
    let mut body = response.into_body();
    tokio::time::sleep(Duration::from_millis(10)).await;

    // Two windows and more stored between two polls (nothing here yields to the poller).
    let mut burst = Vec::new();
    for n in 0..2 * WINDOW + 7 {
        burst.push(add(format!("burst{n}")).await);
    }
    let text = read_until(&mut body, burst.last().unwrap().as_str()).await;
    let announced: Vec<&str> = burst.iter().map(ImageHash::as_str).filter(|h| text.contains(h)).collect();
    assert_eq!((announced.len(), text.matches("event: image").count()), (burst.len(), burst.len()));

    // The newest half of the poller's baseline (its newest page) erased, then one image
    // stored: only that one is news, not the older images now at the top.
    front.index.forget(&burst[burst.len() - WINDOW / 2..]).await.unwrap();
    let after = add("after".into()).await;
    let text = read_until(&mut body, after.as_str()).await;
    assert_eq!(text.matches("event: image").count(), 1, "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_falls_behind_is_dropped_and_the_others_get_every_event() {
    let front = Front::new();
    let subscribe = || async {
        let r =
            front.router.clone().oneshot(Request::get("/api/v1/events").body(Body::empty()).unwrap()).await.unwrap();
        r.into_body()
    };
    let mut reader = subscribe().await;
    let mut sleeper = subscribe().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    // More events than a client may fall behind (256), 40 between two polls,
    // read by one client, never by the other.
    let total = facerec::api::v1::events::BUFFER + 20;
    let mut text = String::new();
    for batch in 0..total.div_ceil(40) {
        for i in 0..40 {
            let n = batch * 40 + i;
            if n < total {
                let hash = ImageHash::of_bytes(format!("img{n}").as_bytes());
                front.index.add_image(&NewImage::bare(hash, format!("{n}.jpg"), vec![], "fp"), 0.6).await.unwrap();
            }
        }
        let last = ImageHash::of_bytes(format!("img{}", (batch * 40 + 39).min(total - 1)).as_bytes());
        text.push_str(&read_until(&mut reader, last.as_str()).await);
    }
    assert_eq!(text.matches("event: image").count(), total);
    // The sleeper's stream ends after the events it could hold, instead of holding back
    // the reader.
    let mut events = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(60), sleeper.frame())
            .await
            .expect("the slow client was not dropped")
        {
            Some(Ok(frame)) => {
                events += frame.into_data().map_or(0, |d| String::from_utf8_lossy(&d).matches("event: image").count())
            }
            Some(Err(e)) => panic!("{e}"),
            None => break,
        }
    }
    assert!(events <= facerec::api::v1::events::BUFFER, "{events}");
}

#[tokio::test]
async fn multipart_queues_every_file_under_its_filename() {
    let front = Front::new();
    let (a, b) = (png("first"), png("second"));
    let r = front
        .call(multipart("/api/v1/images", &[("file", Some("a.png"), &a), ("file", Some("holiday/b.png"), &b)]))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        r.json(),
        json!({"images": [
            {"hash": ImageHash::of_bytes(&a).as_str(), "name": "a.png", "status": "queued"},
            {"hash": ImageHash::of_bytes(&b).as_str(), "name": "holiday/b.png", "status": "queued"},
        ]})
    );
    let queued: Vec<(String, Vec<u8>)> = front.queue.accepted().into_iter().map(|s| (s.name, s.image)).collect();
    assert_eq!(queued, vec![("a.png".into(), a), ("holiday/b.png".into(), b)]);
    let r = front.get(&format!("/api/v1/images/{}", ImageHash::of_bytes(&png("second")))).await;
    assert_eq!(r.json()["status"], "queued");
}

/// Field name, filename, bytes.
type Part<'a> = (&'a str, Option<&'a str>, Vec<u8>);

#[tokio::test]
async fn a_bad_part_queues_nothing_and_the_problem_names_it() {
    let front = Front::with(facerec::api::ApiSettings { max_body_bytes: 1000, ..Default::default() });
    let good = png("good");
    let long = format!("{}.png", "x".repeat(1026));
    let cases: Vec<(Vec<Part>, StatusCode, &str)> = vec![
        (
            vec![("file", Some("a.png"), good.clone()), ("file", Some("notes.txt"), b"hello".to_vec())],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "part 2 (notes.txt)",
        ),
        (
            vec![("file", Some("a.png"), good.clone()), ("file", None, good.clone())],
            StatusCode::BAD_REQUEST,
            "part 2 has no filename",
        ),
        (vec![("photo", Some("a.png"), good.clone())], StatusCode::BAD_REQUEST, "part 1 is named \"photo\""),
        (
            vec![
                ("file", Some("a.png"), good.clone()),
                ("file", Some("big.png"), [good.clone(), vec![0; 1000]].concat()),
            ],
            StatusCode::PAYLOAD_TOO_LARGE,
            "part 2 (big.png)",
        ),
        (vec![("file", Some("empty.png"), Vec::new())], StatusCode::BAD_REQUEST, "part 1 (empty.png) is empty"),
        (vec![("file", Some(&long), good.clone())], StatusCode::BAD_REQUEST, "is 1030 bytes long"),
        (vec![], StatusCode::BAD_REQUEST, "no part named \"file\""),
    ];
    for (parts, status, detail) in cases {
        let parts: Vec<(&str, Option<&str>, &[u8])> = parts.iter().map(|(f, n, b)| (*f, *n, b.as_slice())).collect();
        let r = front.call(multipart("/api/v1/images", &parts)).await;
        assert_eq!(r.status, status, "{detail}: {}", r.text());
        assert!(r.detail().contains(detail), "{detail:?} not in {:?}", r.detail());
    }
    // Not multipart at all, or cut short.
    let r = front
        .call(
            Request::post("/api/v1/images")
                .header("content-type", "multipart/form-data; boundary=x")
                .body(Body::from("--x\r\nbroken"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(front.queue.accepted().is_empty(), "a bad request queued something");
}

#[tokio::test]
async fn the_openapi_document_describes_the_new_routes() {
    let front = Front::new();
    let doc = front.get("/api/v1/openapi.json").await.json();
    let paths = &doc["paths"];
    assert!(paths["/api/v1/images/{hash}/thumbnail"]["get"]["responses"]["404"].is_object());
    assert!(paths["/api/v1/images/{hash}/thumbnail"]["get"]["responses"]["200"]["content"]["image/jpeg"].is_object());
    assert!(paths["/api/v1/people"]["get"]["responses"]["200"].is_object());
    assert!(paths["/api/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"].is_object());
    assert!(paths["/api/v1/images"]["post"]["requestBody"]["content"]["multipart/form-data"].is_object());
    assert!(doc["components"]["schemas"]["ImageView"]["properties"]["boxes"].is_object());
}
