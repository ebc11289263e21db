//! The course's routes, exactly as its clients call them:
//! `POST /scan/image/{filename}` (the body is the image), `POST /scan/url`
//! (`{"url": ...}` as `jsonpickle.encode` writes it) and `GET /match/{hash}`.

use super::Api;
use super::fetch::MAX_URL_BYTES;
use super::ports::FetchError;
use super::problem::Problem;
use crate::hash::ImageHash;
use crate::log_lines::escape;
use crate::ports::IndexError;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

/// The three routes (the page is served by the main router, outside the token).
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/scan/image/{filename}", post(scan_image))
        .route("/scan/url", post(scan_url))
        .route("/match/{hash}", get(match_names))
}

/// `{"hash": ...}`, the answer of both scan routes.
#[derive(Debug, serde::Serialize)]
struct HashReply {
    hash: String,
}

/// A path segment, or a problem saying why it could not be read.
pub(super) fn segment(path: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    path.map(|Path(s)| s).map_err(|e| Problem::bad_request(format!("bad path: {}", e.body_text())))
}

/// A hash from the path, or 400.
pub(super) fn hash_param(path: Result<Path<String>, PathRejection>) -> Result<ImageHash, Problem> {
    let text = segment(path)?;
    ImageHash::parse(&text).map_err(|e| Problem::bad_request(format!("bad image hash: {e}")))
}

/// 503 for an index that cannot be reached.
pub(super) fn index_problem(api: &Api, e: &IndexError) -> Problem {
    api.unavailable(format!("the index cannot answer now: {e}"))
}

async fn scan_image(
    State(api): State<Arc<Api>>,
    filename: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<HashReply>, Problem> {
    let filename = segment(filename)?;
    api.check_name("file name", &filename)?;
    let image = api.read_body(&headers, body).await?;
    let hash = api.queue_image("scan/image", &filename, &image).await?;
    Ok(Json(HashReply { hash: hash.to_string() }))
}

#[derive(Deserialize)]
struct UrlRequest {
    url: String,
}

async fn scan_url(State(api): State<Arc<Api>>, headers: HeaderMap, body: Body) -> Result<Json<HashReply>, Problem> {
    let body = api.read_body(&headers, body).await?;
    let request: UrlRequest = super::submit::json_object(&body, r#"{"url": "http://..."}"#)?;
    let (hash, _known) = api.submit_url("scan/url", &request.url, &request.url).await?;
    Ok(Json(HashReply { hash: hash.to_string() }))
}

impl Api {
    /// Answers a URL from db 1 when it is known (no fetch), else fetches it and queues the
    /// image under `name`. Returns the hash and whether it was known.
    pub(super) async fn submit_url(&self, route: &str, url: &str, name: &str) -> Result<(ImageHash, bool), Problem> {
        if url.len() > MAX_URL_BYTES {
            return Err(Problem::bad_request(format!("the URL is longer than {MAX_URL_BYTES} bytes")));
        }
        self.check_name("URL", url)?;
        self.check_name("name", name)?;
        if let Some(hash) = self.ports.index.hash_of(url).await.map_err(|e| index_problem(self, &e))? {
            self.metrics.fetch("known");
            self.debug(&format!("{route}: {hash} \"{}\" already known, not fetched", escape(url))).await;
            return Ok((hash, true));
        }
        // Before fetching: a shed request costs no download.
        self.shed().await?;
        let started = std::time::Instant::now();
        let image = match self.ports.fetcher.fetch(url).await {
            Ok(image) => image,
            Err(e) => {
                self.metrics.fetch(if matches!(e, FetchError::Refused(_)) { "refused" } else { "failed" });
                self.debug(&format!("{route}: \"{}\" not fetched: {e}", escape(url))).await;
                return Err(fetch_problem(&e));
            }
        };
        self.metrics.fetch("ok");
        self.debug(&format!("{route}: fetched \"{}\": {} bytes in {:?}", escape(url), image.len(), started.elapsed()))
            .await;
        let hash = self.queue_image(route, name, &image).await?;
        Ok((hash, false))
    }

    /// Every name of every image sharing a face with `hash`, sorted.
    pub(super) async fn match_names(&self, hash: &ImageHash) -> Result<Vec<String>, Problem> {
        let names = self.ports.index.match_names(hash).await.map_err(|e| index_problem(self, &e))?;
        Ok(names.into_iter().collect())
    }
}

/// The status and detail of a failed fetch.
pub(super) fn fetch_problem(e: &FetchError) -> Problem {
    let status = match e {
        FetchError::InvalidUrl(_) | FetchError::Refused(_) => StatusCode::BAD_REQUEST,
        FetchError::Unreachable(_) | FetchError::BadResponse(_) => StatusCode::BAD_GATEWAY,
        FetchError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        FetchError::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
    };
    Problem::new(status, e.to_string())
}

async fn match_names(
    State(api): State<Arc<Api>>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<String>>, Problem> {
    let hash = hash_param(hash)?;
    let names = api.match_names(&hash).await?;
    api.debug(&format!("match: {hash}: {} names", names.len())).await;
    Ok(Json(names))
}
