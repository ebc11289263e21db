//! Images in `/api/v1`: submissions (raw body, URL), an image's record, its matches.

use crate::api::Api;
use crate::api::course::{hash_param, index_problem};
use crate::api::problem::Problem;
use crate::hash::ImageHash;
use crate::ports::{FaceBox, ImageFailure, ImageRecord};
use crate::thumbnail;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Where an image is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    /// Submitted through this server, not stored yet.
    Queued,
    /// Stored: faces and matches are known.
    Done,
    /// Dead-lettered by the workers: `reason` says why.
    Failed,
    /// Never seen.
    Unknown,
}

/// The answer to a submission.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// Lowercase hex SHA-256 of the image.
    pub hash: String,
    /// The name it was submitted with.
    pub name: String,
    /// `queued`, or `done` for a URL that was already known.
    pub status: ImageStatus,
}

/// A URL to fetch and submit.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UrlSubmission {
    /// An http or https URL of an image on a public address.
    pub url: String,
    /// The name to record (default: the URL).
    #[serde(default)]
    pub name: Option<String>,
}

/// Everything known about an image.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImageView {
    /// Its hash.
    pub hash: String,
    /// Where it is in the pipeline.
    pub status: ImageStatus,
    /// Every name it arrived with, sorted.
    pub names: Vec<String>,
    /// Faces found in it.
    pub faces: usize,
    /// Images sharing a face with it.
    pub matches: usize,
    /// The encoder settings it was scanned with, when recorded.
    pub fingerprint: Option<String>,
    /// Why the workers gave up on it (status `failed` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When they gave up, in seconds since the Unix epoch (status `failed` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<u64>,
    /// Width in pixels (EXIF orientation applied), when the layout is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels, when the layout is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// One box per face, in image pixels (`[]` when the layout is not stored).
    #[serde(default)]
    pub boxes: Vec<BoxView>,
    /// Whether `GET /api/v1/images/{hash}/thumbnail` has a thumbnail.
    #[serde(default)]
    pub thumbnail: bool,
}

/// A face's box, in image pixels (face_recognition's top, right, bottom, left).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BoxView {
    /// First row of the face.
    pub top: i64,
    /// Right edge.
    pub right: i64,
    /// Bottom edge.
    pub bottom: i64,
    /// First column.
    pub left: i64,
    /// First 16 hex digits of the SHA-256 of the face's encoding (its db 3 bytes).
    pub id: String,
}

impl From<&FaceBox> for BoxView {
    fn from(f: &FaceBox) -> Self {
        Self { top: f.bbox.top, right: f.bbox.right, bottom: f.bbox.bottom, left: f.bbox.left, id: f.id.clone() }
    }
}

impl ImageView {
    /// A stored image.
    pub fn done(record: ImageRecord) -> Self {
        let layout = record.layout.as_ref();
        Self {
            hash: record.hash.to_string(),
            status: ImageStatus::Done,
            names: record.names.into_iter().collect(),
            faces: record.faces.len(),
            matches: record.matches.len(),
            fingerprint: record.fingerprint,
            reason: None,
            failed_at: None,
            width: layout.map(|l| l.width),
            height: layout.map(|l| l.height),
            boxes: layout.map(|l| l.faces.iter().map(BoxView::from).collect()).unwrap_or_default(),
            thumbnail: record.thumbnail,
        }
    }

    /// An image that is not stored: queued, failed (with why) or unknown.
    pub fn missing(hash: &ImageHash, status: ImageStatus, failure: Option<ImageFailure>) -> Self {
        Self {
            hash: hash.to_string(),
            status,
            names: Vec::new(),
            faces: 0,
            matches: 0,
            fingerprint: None,
            failed_at: failure.as_ref().map(|f| f.at),
            reason: failure.map(|f| f.reason),
            width: None,
            height: None,
            boxes: Vec::new(),
            thumbnail: false,
        }
    }
}

/// Another image sharing a face.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MatchView {
    /// Its hash.
    pub hash: String,
    /// Smallest distance between a face of each image.
    pub distance: f64,
    /// Its names, sorted.
    pub names: Vec<String>,
}

/// `?name=` of a raw submission.
#[derive(Debug, Deserialize, IntoParams)]
pub struct NameQuery {
    /// The image's name (a file name), required.
    pub name: Option<String>,
}

/// `?tolerance=` of the matches.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ToleranceQuery {
    /// Only matches at most this far apart (stricter than the workers' tolerance), 0 to 1.
    pub tolerance: Option<f64>,
}

pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(t)| t).map_err(|e| Problem::bad_request(format!("bad query: {}", e.body_text())))
}

/// The multipart form of a submission (documentation only: parts are read one by one).
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// One or more image files, each a part named `file` whose filename is the image's name.
    #[schema(value_type = Vec<String>, format = Binary)]
    pub file: Vec<Vec<u8>>,
}

/// What a submission answers: one image for a raw body, a list for a multipart form.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SubmitReply {
    /// A raw body.
    One(Submitted),
    /// A multipart form.
    Many(super::upload::SubmittedMany),
}

/// Submit images: the body is one image file (`?name=` required), or a
/// `multipart/form-data` form with one or more parts named `file` (each part's filename is
/// its name; every part is checked before any is queued).
#[utoipa::path(post, path = "/api/v1/images", tag = "images", params(NameQuery),
    request_body(description = "The image file, or a form of image files", content(
        (Vec<u8> = "application/octet-stream"),
        (UploadForm = "multipart/form-data"),
    )),
    responses(
        (status = 202, description = "Queued: the broker confirmed every image (one `Submitted` for a raw body, `{\"images\": [...]}` for a form)", body = SubmitReply),
        (status = 400, description = "Missing or bad name, empty body, a bad part (the detail names it)", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body was not received in time", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or a part over the image limit, too many parts", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not an image (the detail names the part)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Broker unavailable: retry later", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn submit_image(
    State(api): State<Arc<Api>>,
    q: Result<Query<NameQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<SubmitReply>), Problem> {
    if super::form::is_multipart(&headers) {
        let many = super::upload::submit_parts(&api, headers, body).await?;
        return Ok((StatusCode::ACCEPTED, Json(SubmitReply::Many(many))));
    }
    let name = query(q)?.name.ok_or_else(|| Problem::bad_request("`?name=` is required"))?;
    api.check_name("name", &name)?;
    let image = api.read_body(&headers, body).await?;
    let hash = api.queue_image("v1/images", &name, &image).await?;
    api.events.queued(&hash);
    Ok((
        StatusCode::ACCEPTED,
        Json(SubmitReply::One(Submitted { hash: hash.to_string(), name, status: ImageStatus::Queued })),
    ))
}

/// Submit an image by URL: the server fetches it (public addresses only).
#[utoipa::path(post, path = "/api/v1/urls", tag = "images", request_body = UrlSubmission,
    responses(
        (status = 202, description = "Fetched and queued", body = Submitted),
        (status = 200, description = "The URL is known already: not fetched again", body = Submitted),
        (status = 400, description = "Bad JSON or URL, or a refused address", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The image is over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The URL's content is not an image", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The URL could not be fetched", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Broker or index unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn submit_url(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Submitted>), Problem> {
    let body = api.read_body(&headers, body).await?;
    let request: UrlSubmission = crate::api::submit::json_object(&body, r#"{"url": ..., "name": ...}"#)?;
    let name = request.name.clone().unwrap_or_else(|| request.url.clone());
    let (hash, known) = api.submit_url("v1/urls", &request.url, &name).await?;
    if !known {
        api.events.queued(&hash);
    }
    let (status, state) =
        if known { (StatusCode::OK, ImageStatus::Done) } else { (StatusCode::ACCEPTED, ImageStatus::Queued) };
    Ok((status, Json(Submitted { hash: hash.to_string(), name, status: state })))
}

/// An image's record.
#[utoipa::path(get, path = "/api/v1/images/{hash}", tag = "images",
    params(("hash" = String, Path, description = "The image's hash")),
    responses(
        (status = 200, description = "The record (status `unknown` when never seen)", body = ImageView),
        (status = 400, description = "Bad hash", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Index unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn image(
    State(api): State<Arc<Api>>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<Json<ImageView>, Problem> {
    let hash = hash_param(hash)?;
    let record = api.ports.index.image(&hash).await.map_err(|e| index_problem(&api, &e))?;
    let view = match record {
        Some(r) if !r.names.is_empty() => ImageView::done(r),
        _ => {
            let failure = api.ports.index.failure(&hash).await.map_err(|e| index_problem(&api, &e))?;
            let status = match &failure {
                Some(_) => ImageStatus::Failed,
                None => status_of_missing(&api, &hash),
            };
            ImageView::missing(&hash, status, failure)
        }
    };
    Ok(Json(view))
}

/// `?px=` of the thumbnail.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SizeQuery {
    /// Longest side wanted, 1 to 4096: a smaller stored thumbnail is scaled down (never up).
    pub px: Option<u32>,
}

/// An image's thumbnail: a JPEG, long side `FACEREC_THUMBNAIL_PX` (256 by default), or at
/// most `px` when asked for less.
#[utoipa::path(get, path = "/api/v1/images/{hash}/thumbnail", tag = "images",
    params(("hash" = String, Path, description = "The image's hash"), SizeQuery),
    responses(
        (status = 200, description = "The thumbnail; cacheable for good (the hash is the content)", body = Vec<u8>, content_type = "image/jpeg"),
        (status = 400, description = "Bad hash or px", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No thumbnail: unknown image, thumbnails off, or stored by an older worker", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Index unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn thumbnail(
    State(api): State<Arc<Api>>,
    hash: Result<Path<String>, PathRejection>,
    q: Result<Query<SizeQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let hash = hash_param(hash)?;
    let px = query(q)?.px;
    if let Some(px) = px
        && !(1..=thumbnail::MAX_STORED_PX).contains(&px)
    {
        return Err(Problem::bad_request(format!("px must be between 1 and {}, got {px}", thumbnail::MAX_STORED_PX)));
    }
    let stored = api.ports.index.thumbnail(&hash).await.map_err(|e| index_problem(&api, &e))?;
    let jpeg = match (stored, px) {
        (Some(jpeg), Some(px)) => {
            // Decoding and encoding a few hundred pixels: about a millisecond, off the runtime.
            let smaller = tokio::task::spawn_blocking({
                let jpeg = jpeg.clone();
                move || thumbnail::shrink(&jpeg, px)
            })
            .await
            .ok()
            .flatten();
            Some(smaller.unwrap_or(jpeg))
        }
        (stored, _) => stored,
    };
    match jpeg {
        Some(jpeg) => Ok((
            [(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=31536000, immutable")],
            jpeg,
        )
            .into_response()),
        None => Err(Problem::not_found(format!("no thumbnail for image {hash}"))),
    }
}

fn status_of_missing(api: &Api, hash: &ImageHash) -> ImageStatus {
    if api.queued.contains(hash) { ImageStatus::Queued } else { ImageStatus::Unknown }
}

/// The images sharing a face with this one, nearest first.
#[utoipa::path(get, path = "/api/v1/images/{hash}/matches", tag = "images",
    params(("hash" = String, Path, description = "The image's hash"), ToleranceQuery),
    responses(
        (status = 200, description = "Matches, nearest first ([] for an unknown image)", body = Vec<MatchView>),
        (status = 400, description = "Bad hash or tolerance", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Index unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn matches(
    State(api): State<Arc<Api>>,
    hash: Result<Path<String>, PathRejection>,
    q: Result<Query<ToleranceQuery>, QueryRejection>,
) -> Result<Json<Vec<MatchView>>, Problem> {
    let hash = hash_param(hash)?;
    let tolerance = query(q)?.tolerance;
    if let Some(t) = tolerance
        && !(0.0..=1.0).contains(&t)
    {
        return Err(Problem::bad_request(format!("tolerance must be between 0 and 1, got {t}")));
    }
    let index = &api.ports.index;
    let Some(record) = index.image(&hash).await.map_err(|e| index_problem(&api, &e))? else {
        return Ok(Json(Vec::new()));
    };
    let mut out = Vec::new();
    for m in record.matches.iter().filter(|m| tolerance.is_none_or(|t| m.distance <= t)) {
        let names = index.image(&m.hash).await.map_err(|e| index_problem(&api, &e))?.map(|r| r.names);
        out.push(MatchView {
            hash: m.hash.to_string(),
            distance: m.distance,
            names: names.into_iter().flatten().collect(),
        });
    }
    out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then_with(|| a.hash.cmp(&b.hash)));
    Ok(Json(out))
}
