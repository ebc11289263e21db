//! The web page: `/` and `/assets/{file}` with their content types, CSP, ETag and 304, open
//! without the token; the shipped files carry the hooks the browser tests rely on.

use super::Front;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use facerec::api::ApiSettings;
use facerec::api::page::{ASSETS, CSP};
use facerec::config::Secret;
use std::io::Read as _;
use tower::ServiceExt as _;

/// A GET with the given headers: (status, headers, body); a 304 is not an error, so not
/// `Front::call`.
async fn get_with(front: &Front, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let request = headers.iter().fold(Request::get(path), |r, (name, value)| r.header(*name, *value));
    let response = front.router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec();
    (status, headers, body)
}

/// A conditional GET: (status, ETag, body).
async fn conditional(front: &Front, path: &str, if_none_match: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let (status, headers, body) = get_with(front, path, &[("if-none-match", if_none_match)]).await;
    (status, headers.get("etag").map(|v| v.to_str().unwrap().to_owned()), body)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("a gzip stream");
    out
}

#[tokio::test]
async fn assets_are_gzipped_for_clients_that_accept_it_under_their_own_etag() {
    let front = Front::new();
    let (mut plain_total, mut sent_total) = (0, 0);
    for asset in ASSETS {
        let path = format!("/assets/{}", asset.name);
        let (status, headers, body) = get_with(&front, &path, &[("accept-encoding", "gzip, deflate, br, zstd")]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers.get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"), "{path}");
        assert_eq!(headers.get("vary").map(|v| v.to_str().unwrap()), Some("accept-encoding"), "{path}");
        assert_eq!(gunzip(&body), asset.body, "{path}: the gzipped body is the file");
        let gzip_tag = headers.get("etag").unwrap().to_str().unwrap().to_owned();
        (plain_total, sent_total) = (plain_total + asset.body.len(), sent_total + body.len());

        let (status, headers, body) = get_with(&front, &path, &[]).await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, asset.body), "{path} without Accept-Encoding");
        assert!(headers.get("content-encoding").is_none(), "{path}");
        let plain_tag = headers.get("etag").unwrap().to_str().unwrap();
        assert_ne!(plain_tag, gzip_tag, "{path}: two representations, one ETag");

        let (status, _, body) =
            get_with(&front, &path, &[("accept-encoding", "gzip"), ("if-none-match", &gzip_tag)]).await;
        assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0), "{path}: revalidating the gzipped copy");
        let (status, _, _) = get_with(&front, &path, &[("if-none-match", &gzip_tag)]).await;
        assert_eq!(status, StatusCode::OK, "{path}: the gzipped copy's ETag does not validate the plain one");
    }
    assert!(sent_total * 2 < plain_total, "gzip sent {sent_total} of {plain_total} bytes");
    for refused in ["gzip;q=0", "identity", "br, deflate", "gzip ; q=0.0, br"] {
        let (_, headers, body) = get_with(&front, "/", &[("accept-encoding", refused)]).await;
        assert!(headers.get("content-encoding").is_none(), "Accept-Encoding: {refused}");
        assert_eq!(body, text("index.html").as_bytes(), "Accept-Encoding: {refused}");
    }
    for allowed in ["x-gzip", "*", "GZIP;q=0.5", "br;q=1, gzip;q=0.1"] {
        let (_, headers, body) = get_with(&front, "/", &[("accept-encoding", allowed)]).await;
        assert_eq!(headers.get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"), "{allowed}");
        assert_eq!(gunzip(&body), text("index.html").as_bytes(), "{allowed}");
    }
}

fn text(name: &str) -> &'static str {
    let asset = ASSETS.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("{name} is not shipped"));
    std::str::from_utf8(asset.body).unwrap()
}

fn assert_page_headers(r: &super::Reply, what: &str) {
    let csp = r.header("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(csp.contains("default-src 'self'") && csp.contains("img-src 'self' data: blob:"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{what}: {csp}");
    assert_eq!(csp, CSP, "{what}");
    assert_eq!(r.header("cache-control"), Some("no-cache"), "{what}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{what}");
    let etag = r.header("etag").unwrap_or_else(|| panic!("{what}: no ETag"));
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 8, "{what}: strong ETag, got {etag}");
}

#[tokio::test]
async fn the_page_and_each_asset_are_served_with_their_type_csp_and_etag() {
    let front = Front::new();
    let r = front.get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_page_headers(&r, "/");
    assert_eq!(r.body, text("index.html").as_bytes());
    let expected = [
        ("index.html", "text/html; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ];
    let mut etags = std::collections::HashSet::new();
    for asset in ASSETS {
        let r = front.get(&format!("/assets/{}", asset.name)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", asset.name);
        let by_extension = match asset.name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("html") => "text/html; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset kind {other:?}"),
        };
        assert_eq!(r.header("content-type"), Some(by_extension), "{}", asset.name);
        assert_eq!(r.body, asset.body, "{}", asset.name);
        assert_page_headers(&r, asset.name);
        assert!(etags.insert(r.header("etag").unwrap().to_owned()), "{}: ETag shared with another file", asset.name);
    }
    for (name, ty) in expected {
        assert_eq!(front.get(&format!("/assets/{name}")).await.header("content-type"), Some(ty));
    }
    // Every file index.html refers to is shipped.
    for reference in text("index.html").split("/assets/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(ASSETS.iter().any(|a| a.name == name), "index.html refers to /assets/{name}, not shipped");
    }
    for missing in ["/assets/nope.js", "/assets/..%2FCargo.toml", "/assets/"] {
        let r = front.get(missing).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
    }
}

#[tokio::test]
async fn a_known_etag_is_answered_304_without_a_body() {
    let front = Front::new();
    for path in ["/", "/assets/app.js", "/assets/style.css"] {
        let etag = front.get(path).await.header("etag").unwrap().to_owned();
        for sent in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".to_owned()] {
            let (status, tag, body) = conditional(&front, path, &sent).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{path} with {sent}");
            assert!(body.is_empty(), "{path}");
            assert_eq!(tag.as_deref(), Some(etag.as_str()), "{path}");
        }
        let (status, _, body) = conditional(&front, path, "\"stale\"").await;
        assert_eq!(status, StatusCode::OK, "{path} with a stale ETag");
        assert!(!body.is_empty());
    }
}

#[tokio::test]
async fn the_page_is_open_when_the_api_needs_a_token() {
    let front = Front::with(ApiSettings { token: Some(Secret::new("page-t0ken")), ..ApiSettings::default() });
    for path in ["/", "/assets/app.js", "/assets/api.js"] {
        assert_eq!(front.get(path).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(front.get("/api/v1/images").await.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn the_shipped_page_has_the_hooks_and_nothing_external_or_inline() {
    let html = text("index.html");
    assert!(html.contains(r#"type="file""#) && html.contains("multiple"), "the upload field");
    assert!(html.contains(r#"type="url""#), "the URL field");
    let js: String = ASSETS.iter().filter(|a| a.name.ends_with(".js")).map(|a| text(a.name)).collect();
    for hook in [r#""data-hash""#, r#""data-face""#, r#""data-match-hash""#] {
        assert!(js.contains(hook), "hook {hook} missing from the scripts");
    }
    for (needle, why) in [
        ("Authorization", "the bearer token header"),
        ("sessionStorage", "the token kept for the tab"),
        ("/api/v1/events", "the event stream"),
        ("upload.onprogress", "per-file progress"),
        ("/matches", "the matches"),
        ("tolerance", "the tolerance slider"),
        ("/api/v1/people", "the people view"),
    ] {
        assert!(js.contains(needle), "{why}: {needle} missing from the scripts");
    }
    // The CSP forbids inline script and style: the HTML must not need them.
    assert!(
        !html.contains("<script>") && !html.contains(" style=") && !html.contains("<style"),
        "inline code in index.html"
    );
    let handler = html.split(" on").skip(1).find(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert!(handler.is_none(), "inline event handler in index.html: on{}", handler.unwrap_or_default());
    for asset in ASSETS {
        let body = std::str::from_utf8(asset.body).unwrap();
        for external in ["src=\"http", "href=\"http", "url(http", "from \"http", "import(\"http", "@import"] {
            assert!(!body.contains(external), "{}: refers outside the origin ({external})", asset.name);
        }
    }
    let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
    assert!(total < 100 * 1024, "the page weighs {total} bytes, the budget is 100 KB");
}
