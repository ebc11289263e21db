//! The web page: `GET /` and `GET /assets/{file}`, plain HTML/CSS/ES modules from
//! `src/api/page/` embedded in the binary (nothing to build, nothing fetched from elsewhere).
//!
//! Every file is sent with `Cache-Control: no-cache` and a strong ETag (a SHA-256 prefix of
//! its bytes), so a browser revalidates and gets a 304 until the binary changes, and with a
//! Content-Security-Policy that lets the page load from and talk to this origin only (images
//! also from `data:` and `blob:`, which the page uses for local previews and for thumbnails
//! fetched with the bearer token). No inline script or style is allowed. The page is open
//! without the token: only the API calls it makes need it.

use super::problem::Problem;
use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// One embedded file of the page.
#[derive(Debug)]
pub struct Asset {
    /// Its name under `/assets/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("page/", $name)) }
    };
}

/// Every file of the page; the first, `index.html`, is also served at `/`.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("live.js", JS),
    asset!("gallery.js", JS),
    asset!("image.js", JS),
    asset!("people.js", JS),
    asset!("icon.svg", SVG),
];

/// The Content-Security-Policy of every page response.
pub const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Each asset's strong ETag, in [`ASSETS`] order.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let tag = format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..16]));
            HeaderValue::from_str(&tag).expect("hex is a valid header value")
        })
        .collect()
});

/// `/` and `/assets/{file}`, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/assets/{file}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn asset(file: Result<Path<String>, PathRejection>, headers: HeaderMap) -> Response {
    let file = file.map(|Path(f)| f).unwrap_or_default();
    match ASSETS.iter().position(|a| a.name == file) {
        Some(i) => serve(i, &headers),
        None => Problem::not_found(format!("no asset {}", crate::log_lines::escape(&file))).into_response(),
    }
}

fn serve(i: usize, request: &HeaderMap) -> Response {
    let (asset, etag) = (&ASSETS[i], &ETAGS[i]);
    let fresh = request.get_all(header::IF_NONE_MATCH).iter().any(|v| matches_etag(v, etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `If-None-Match` uses the weak comparison (RFC 9110 13.1.2): `W/` is ignored, `*` matches.
fn matches_etag(value: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else { return false };
    value.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/").as_bytes() == etag.as_bytes())
}
