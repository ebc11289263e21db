//! `POST /api/v1/images` with `multipart/form-data`: several files in one request (the
//! page's file picker). Every part is read and checked ([`super::form`]: name, size,
//! sniffed as an image) before any is queued, so a bad part queues nothing.

use super::form::{FormRules, read_files};
use super::images::{ImageStatus, Submitted};
use crate::api::Api;
use crate::api::problem::Problem;
use axum::body::Body;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most files in one request.
pub const MAX_PARTS: usize = 32;

/// The answer to a multipart submission.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmittedMany {
    /// One entry per part, in request order.
    pub images: Vec<Submitted>,
}

/// Reads, checks and queues every `file` part.
pub(super) async fn submit_parts(api: &Api, headers: HeaderMap, body: Body) -> Result<SubmittedMany, Problem> {
    let rules = FormRules { max_files: MAX_PARTS, filenames: true };
    let files = read_files(api, headers, body, rules).await?;
    let mut images = Vec::with_capacity(files.len());
    for file in files {
        let name = file.name.unwrap_or_default();
        let hash = api.queue_image("v1/images", &name, &file.bytes).await?;
        api.events.queued(&hash);
        images.push(Submitted { hash: hash.to_string(), name, status: ImageStatus::Queued });
    }
    Ok(SubmittedMany { images })
}
