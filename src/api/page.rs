//! The web page: `GET /` and `GET /assets/{file}`, plain HTML/CSS/ES modules from
//! `src/api/page/` embedded in the binary (nothing to build, nothing fetched from elsewhere).
//!
//! Every file is sent with `Cache-Control: no-cache` and a strong ETag (a SHA-256 prefix of
//! its bytes), so a browser revalidates and gets a 304 until the binary changes; gzipped
//! (compressed once, at first use) to a client whose `Accept-Encoding` allows it, under an
//! ETag of its own and with `Vary: Accept-Encoding`; and with a
//! Content-Security-Policy that lets the page load from and talk to this origin only (images
//! also from `data:` and `blob:`, which the page uses for local previews and for thumbnails
//! fetched with the bearer token). No inline script or style is allowed. The page is open
//! without the token: only the API calls it makes need it.

use super::problem::Problem;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use std::io::Write as _;
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

/// One way of sending an asset: its bytes and their strong ETag.
struct Variant {
    body: Bytes,
    etag: HeaderValue,
}

/// Each asset as it is and gzipped, in [`ASSETS`] order.
static VARIANTS: LazyLock<Vec<(Variant, Variant)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let tag = hex::encode(&Sha256::digest(a.body)[..16]);
            let etag = |t: String| HeaderValue::from_str(&t).expect("hex is a valid header value");
            let plain = Variant { body: Bytes::from_static(a.body), etag: etag(format!("\"{tag}\"")) };
            let gzipped = Variant { body: gzip(a.body).into(), etag: etag(format!("\"{tag}-gzip\"")) };
            (plain, gzipped)
        })
        .collect()
});

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// Whether `Accept-Encoding` allows gzip (`gzip`, `x-gzip` or `*`, with a q-value above 0).
fn accepts_gzip(request: &HeaderMap) -> bool {
    let codings = request.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok());
    codings.flat_map(|v| v.split(',')).any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts.find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))).map(str::trim);
        let allowed = q.is_none_or(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0));
        matches!(name.as_str(), "gzip" | "x-gzip" | "*") && allowed
    })
}

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
    let (plain, gzipped) = &VARIANTS[i];
    let gzip = accepts_gzip(request);
    let variant = if gzip { gzipped } else { plain };
    let fresh = request.get_all(header::IF_NONE_MATCH).iter().any(|v| matches_etag(v, &variant.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, ASSETS[i].content_type)], variant.body.clone()).into_response()
    };
    let h = response.headers_mut();
    if gzip && !fresh {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::ETAG, variant.etag.clone());
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
