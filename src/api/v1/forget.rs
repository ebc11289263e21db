//! `POST /api/v1/forget`: erase every stored image of a person, given a photo of them.
//! The photo's faces are found with the [`FaceEncoder`](crate::ports::FaceEncoder), every
//! image with a face within `?tolerance=` of one of them is found
//! ([`FaceIndex::find_faces`](crate::ports::FaceIndex::find_faces)) and erased like
//! `DELETE /api/v1/images/{hash}` does, unless `?dry_run=true`. The photo is not stored.
//!
//! `facerec api` has no encoder (it only queues images): there the route answers 501 and
//! points to `facerec forget --face` and `facerec serve`.
//!
//! Audit: one line on `<host>.rest.info` per call, dry runs included, with the hashes and
//! counts; never names, encodings or image data.

use super::erase::Erased;
use super::form::{FormRules, is_multipart, read_files};
use super::images::query;
use crate::api::Api;
use crate::api::course::index_problem;
use crate::api::problem::Problem;
use crate::hash::ImageHash;
use crate::ports::{EncodeError, Forgotten};
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// The tolerance when none is given: stricter than the matching tolerance (0.6), so only
/// the person is erased, not look-alikes.
pub const DEFAULT_TOLERANCE: f64 = 0.5;

/// `?tolerance=&dry_run=`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ForgetQuery {
    /// Erase images with a face at most this far from a face of the photo: above 0, at
    /// most 1 (default 0.5).
    pub tolerance: Option<f64>,
    /// Only say what would be erased (default false).
    pub dry_run: Option<bool>,
}

/// The multipart form of the photo (documentation only).
#[derive(Debug, ToSchema)]
pub struct PhotoForm {
    /// The photo, one part named `file`.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// A stored image with a face of the person, as it was before the erase.
#[derive(Debug, Serialize, ToSchema)]
pub struct MatchedImage {
    /// Its hash.
    pub hash: String,
    /// Its names, sorted.
    pub names: Vec<String>,
    /// Faces in it.
    pub faces: usize,
    /// Smallest distance between one of its faces and a face of the photo.
    pub distance: f64,
}

/// What `POST /api/v1/forget` found and erased.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForgetReport {
    /// `true`: nothing was erased, `matched` is what would be.
    pub dry_run: bool,
    /// The tolerance used.
    pub tolerance: f64,
    /// Faces found in the photo.
    pub photo_faces: usize,
    /// Images with a face within the tolerance, nearest first, as they were before.
    pub matched: Vec<MatchedImage>,
    /// One entry per matched image, in the same order, as `DELETE /api/v1/images/{hash}`
    /// reports it (`erased: false` when it was gone already); `[]` on a dry run.
    pub erased: Vec<Erased>,
}

/// Erases every image of the person in the photo: the body is the photo (raw, or a
/// `multipart/form-data` form with one part named `file`).
#[utoipa::path(post, path = "/api/v1/forget", tag = "images", params(ForgetQuery),
    request_body(description = "A photo of the person", content(
        (Vec<u8> = "application/octet-stream"),
        (PhotoForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "What matched, and what was erased (nothing on a dry run)", body = ForgetReport),
        (status = 400, description = "Bad tolerance or query, empty body, a bad form", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body was not received in time", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The photo is over the image limit, or more than one file", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The photo is not an image", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No face found in the photo", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "This server has no face encoder (`facerec api`): use `facerec forget --face` or `facerec serve`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Index or encoder unavailable: retry later", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn forget(
    State(api): State<Arc<Api>>,
    q: Result<Query<ForgetQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ForgetReport>, Problem> {
    let Some(encoder) = api.ports.encoder.clone() else {
        return Err(Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            "this server has no face encoder (`facerec api` only queues images): erase by photo with \
             `facerec forget --face PHOTO` or through `facerec serve`; erase by hash with \
             DELETE /api/v1/images/{hash}",
        ));
    };
    let q = query(q)?;
    let tolerance = q.tolerance.unwrap_or(DEFAULT_TOLERANCE);
    if !(tolerance > 0.0 && tolerance <= 1.0) {
        return Err(Problem::bad_request(format!("tolerance must be above 0 and at most 1, got {tolerance}")));
    }
    let dry_run = q.dry_run.unwrap_or(false);
    let photo = read_photo(&api, headers, body).await?;
    let encoded = encoder.encode(&ImageHash::of_bytes(&photo), &photo).await.map_err(|e| encode_problem(&api, &e))?;
    if encoded.faces.is_empty() {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "no face found in the photo"));
    }
    let faces: Vec<_> = encoded.faces.iter().map(|f| f.encoding).collect();
    let index = &api.ports.index;
    let found = index.find_faces(&faces, tolerance).await.map_err(|e| index_problem(&api, &e))?;
    let mut matched = Vec::with_capacity(found.len());
    for m in &found {
        // Gone since (another erase): nothing to report or erase.
        if let Some(record) = index.image(&m.hash).await.map_err(|e| index_problem(&api, &e))? {
            matched.push(MatchedImage {
                hash: m.hash.to_string(),
                names: record.names.into_iter().collect(),
                faces: record.faces.len(),
                distance: m.distance,
            });
        }
    }
    let hashes: Vec<ImageHash> = found.into_iter().map(|m| m.hash).collect();
    let erased = if dry_run {
        Vec::new()
    } else {
        let done = index.forget(&hashes).await.map_err(|e| index_problem(&api, &e))?;
        for hash in &hashes {
            api.queued.remove(hash);
        }
        erased_in_order(&hashes, done)
    };
    api.info(&audit_line(dry_run, tolerance, &matched, &erased)).await;
    Ok(Json(ForgetReport { dry_run, tolerance, photo_faces: faces.len(), matched, erased }))
}

/// The photo: the raw body, or the one `file` part of a form.
async fn read_photo(api: &Api, headers: HeaderMap, body: Body) -> Result<Vec<u8>, Problem> {
    if is_multipart(&headers) {
        let rules = FormRules { max_files: 1, filenames: false };
        let mut files = read_files(api, headers, body, rules).await?;
        return Ok(files.pop().map(|f| f.bytes).unwrap_or_default());
    }
    let bytes = api.read_body(&headers, body).await?;
    crate::api::submit::check_image("the body", &bytes)?;
    Ok(bytes.to_vec())
}

/// The status of an encoder failure.
fn encode_problem(api: &Api, e: &EncodeError) -> Problem {
    match e {
        EncodeError::NotAnImage(_) => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("the photo cannot be decoded: {e}"))
        }
        EncodeError::OverLimit(_) => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the photo is too large: {e}"))
        }
        EncodeError::NotRecorded(_) | EncodeError::Failed(_) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, format!("no face could be found in the photo: {e}"))
        }
        EncodeError::Unavailable(_) => api.unavailable(format!("the encoder cannot answer now: {e}")),
    }
}

/// One entry per hash asked for, in that order.
fn erased_in_order(hashes: &[ImageHash], done: Forgotten) -> Vec<Erased> {
    let mut by_hash: std::collections::HashMap<ImageHash, _> =
        done.erased.into_iter().map(|e| (e.hash.clone(), e)).collect();
    hashes.iter().map(|h| Erased::of(h, by_hash.remove(h))).collect()
}

/// Hashes and counts only: names, encodings and the photo stay out of the logs.
fn audit_line(dry_run: bool, tolerance: f64, matched: &[MatchedImage], erased: &[Erased]) -> String {
    let list = |hashes: Vec<&str>| if hashes.is_empty() { String::new() } else { format!(": {}", hashes.join(" ")) };
    if dry_run {
        let faces: usize = matched.iter().map(|m| m.faces).sum();
        let names: usize = matched.iter().map(|m| m.names.len()).sum();
        return format!(
            "forget by photo (dry run, tolerance {tolerance}): would erase {} images ({faces} faces, {names} names){}",
            matched.len(),
            list(matched.iter().map(|m| m.hash.as_str()).collect())
        );
    }
    let done: Vec<&Erased> = erased.iter().filter(|e| e.erased).collect();
    let faces: usize = done.iter().map(|e| e.faces).sum();
    let names: usize = done.iter().map(|e| e.names.len()).sum();
    let links: usize = done.iter().map(|e| e.matches).sum();
    format!(
        "forget by photo (tolerance {tolerance}): erased {} images ({faces} faces, {names} names, {links} links), {} already absent{}",
        done.len(),
        erased.len() - done.len(),
        list(done.iter().map(|e| e.hash.as_str()).collect())
    )
}
