//! `DELETE /api/v1/images/{hash}`: erase an image everywhere (all databases, every
//! worker's cache), idempotently. An audit line with the hash and counts (never names,
//! encodings or image data) goes to `<host>.rest.info`.

use crate::api::Api;
use crate::api::course::{hash_param, index_problem};
use crate::api::problem::Problem;
use crate::hash::ImageHash;
use crate::ports::ErasedImage;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// What an erase did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    /// The hash asked for.
    pub hash: String,
    /// `true` when the image was stored and is now gone; `false` when it was unknown
    /// (erasing is idempotent: not an error).
    pub erased: bool,
    /// The names that pointed to it and were removed, sorted.
    pub names: Vec<String>,
    /// Face encodings removed.
    pub faces: usize,
    /// Images it was linked with before.
    pub matches: usize,
}

impl Erased {
    /// What the index reported for `hash`: `Some` when it was stored and is gone now.
    pub fn of(hash: &ImageHash, done: Option<ErasedImage>) -> Self {
        match done {
            Some(e) => Erased {
                hash: hash.to_string(),
                erased: true,
                names: e.names.into_iter().collect(),
                faces: e.faces,
                matches: e.matches,
            },
            None => Erased { hash: hash.to_string(), erased: false, names: Vec::new(), faces: 0, matches: 0 },
        }
    }
}

/// Erases an image.
#[utoipa::path(delete, path = "/api/v1/images/{hash}", tag = "images",
    params(("hash" = String, Path, description = "The image's hash")),
    responses(
        (status = 200, description = "Erased, or unknown (`erased: false`)", body = Erased),
        (status = 400, description = "Bad hash", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Index unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn erase(
    State(api): State<Arc<Api>>,
    hash: Result<Path<String>, PathRejection>,
) -> Result<Json<Erased>, Problem> {
    let hash = hash_param(hash)?;
    let forgotten = api.ports.index.forget(std::slice::from_ref(&hash)).await.map_err(|e| index_problem(&api, &e))?;
    // Submitted through this server earlier: no longer "queued" either.
    api.queued.remove(&hash);
    let out = Erased::of(&hash, forgotten.erased.into_iter().find(|e| e.hash == hash));
    api.info(&format!(
        "erase: {hash}: {} ({} names, {} faces, {} links)",
        if out.erased { "erased" } else { "unknown, nothing to erase" },
        out.names.len(),
        out.faces,
        out.matches
    ))
    .await;
    Ok(Json(out))
}
