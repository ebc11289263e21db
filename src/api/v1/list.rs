//! `GET /api/v1/images`: stored images, newest first, a page at a time.

use super::images::ImageView;
use crate::api::Api;
use crate::api::course::index_problem;
use crate::api::problem::Problem;
use crate::ports::IndexError;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Images per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 20;
/// Most images per page.
const MAX_LIMIT: usize = 100;

/// `?limit=&cursor=`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Images per page, 1 to 100 (default 20).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (absent: the newest images).
    pub cursor: Option<String>,
}

/// One page of images.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImageList {
    /// Stored images, newest first.
    pub images: Vec<ImageView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Stored images, newest first.
#[utoipa::path(get, path = "/api/v1/images", tag = "images", params(PageQuery),
    responses(
        (status = 200, description = "One page, newest first", body = ImageList),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Index unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(api): State<Arc<Api>>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<ImageList>, Problem> {
    let q = q.map(|Query(q)| q).map_err(|e| Problem::bad_request(format!("bad query: {}", e.body_text())))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(format!("limit must be between 1 and {MAX_LIMIT}, got {limit}")));
    }
    let index = &api.ports.index;
    let page = index.recent(limit, q.cursor).await.map_err(|e| match e {
        IndexError::Rejected(why) => Problem::bad_request(format!("bad cursor: {why}")),
        e => index_problem(&api, &e),
    })?;
    let mut images = Vec::with_capacity(page.hashes.len());
    for hash in page.hashes {
        // Erased between the two reads: left out.
        if let Some(r) = index.image(&hash).await.map_err(|e| index_problem(&api, &e))? {
            images.push(ImageView::done(r));
        }
    }
    Ok(Json(ImageList { images, next_cursor: page.next }))
}
