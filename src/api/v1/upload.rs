//! `POST /api/v1/images` with `multipart/form-data`: several files in one request (the
//! page's file picker). Every part is read and checked (name, size, sniffed as an image)
//! before any is queued, so a bad part queues nothing.

use super::images::{ImageStatus, Submitted};
use crate::api::Api;
use crate::api::problem::Problem;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most files in one request.
pub const MAX_PARTS: usize = 32;
/// The whole request may be this many times the one-image limit (`max_body_bytes`).
pub const TOTAL_FACTOR: usize = 2;

/// The answer to a multipart submission.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmittedMany {
    /// One entry per part, in request order.
    pub images: Vec<Submitted>,
}

/// Whether the request is `multipart/form-data`.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// Reads, checks and queues every `file` part.
pub(super) async fn submit_parts(api: &Api, headers: HeaderMap, body: Body) -> Result<SubmittedMany, Problem> {
    let per_part = api.settings.max_body_bytes;
    let total = per_part.saturating_mul(TOTAL_FACTOR);
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > total as u64) {
        return Err(too_large(format!("the request is larger than {total} bytes")));
    }
    let mut request = Request::new(Body::new(http_body_util::Limited::new(body, total)));
    *request.headers_mut() = headers;
    let multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| Problem::bad_request(format!("bad multipart request: {}", e.body_text())))?;
    let parts = tokio::time::timeout(api.settings.body_timeout, read_parts(api, multipart, per_part))
        .await
        .map_err(|_| Problem::new(StatusCode::REQUEST_TIMEOUT, "the body was not received in time"))??;
    let mut images = Vec::with_capacity(parts.len());
    for (name, bytes) in parts {
        let hash = api.queue_image("v1/images", &name, &bytes).await?;
        api.events.queued(&hash);
        images.push(Submitted { hash: hash.to_string(), name, status: ImageStatus::Queued });
    }
    Ok(SubmittedMany { images })
}

/// Every part, checked; the first bad one is the error, naming it.
async fn read_parts(api: &Api, mut multipart: Multipart, per_part: usize) -> Result<Vec<(String, Vec<u8>)>, Problem> {
    let mut parts = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(parts.len() + 1, &e)),
        };
        let n = parts.len() + 1;
        let what = format!("part {n}");
        if field.name() != Some("file") {
            return Err(Problem::bad_request(format!(
                "{what} is named {:?}; every part must be named \"file\"",
                field.name().unwrap_or("")
            )));
        }
        if n > MAX_PARTS {
            return Err(too_large(format!("more than {MAX_PARTS} files in one request")));
        }
        let Some(name) = field.file_name().map(str::to_owned) else {
            return Err(Problem::bad_request(format!("{what} has no filename (it is the image's name)")));
        };
        let what = format!("{what} ({})", crate::log_lines::escape(&name));
        api.check_name(&format!("filename of {what}"), &name)?;
        let mut bytes = Vec::new();
        let mut field = field;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > per_part {
                        return Err(too_large(format!("{what} is larger than {per_part} bytes")));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(multipart_error(n, &e)),
            }
        }
        if bytes.is_empty() {
            return Err(Problem::bad_request(format!("{what} is empty")));
        }
        if !crate::api::fetch::is_image(&bytes) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("{what} is not an image (JPEG, PNG, GIF, BMP or WebP)"),
            ));
        }
        parts.push((name, bytes));
    }
    if parts.is_empty() {
        return Err(Problem::bad_request("no part named \"file\": send one or more images as parts named \"file\""));
    }
    Ok(parts)
}

fn too_large(detail: String) -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, detail)
}

/// A malformed body or one over the whole-request limit.
fn multipart_error(part: usize, e: &axum::extract::multipart::MultipartError) -> Problem {
    let text = e.body_text();
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE || text.contains("length limit") {
        too_large(format!("the request is over its size limit at part {part}"))
    } else {
        Problem::bad_request(format!("bad multipart body at part {part}: {text}"))
    }
}
