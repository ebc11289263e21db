//! `GET /api/v1/people`: the faces of the newest images grouped into people (transitively:
//! faces within the tolerance of each other, and so on), largest group first, each with one
//! face to show.
//!
//! The work is bounded: only the newest `limit` stored images (at most [`MAX_LIMIT`]) are
//! considered, and faces are compared only between images the workers linked (db 4: their
//! stored matches), never all pairs. So two images the workers did not match are never one
//! person here, whatever the tolerance.

use super::images::BoxView;
use crate::api::Api;
use crate::api::course::index_problem;
use crate::api::problem::Problem;
use crate::face::Encoding;
use crate::hash::ImageHash;
use crate::people::{FaceRef, group_linked};
use crate::ports::{ImageRecord, IndexError};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Images considered when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 200;
/// Most images considered.
pub const MAX_LIMIT: usize = 1000;
/// Tolerance when not given: face_recognition's and the workers' default.
pub const DEFAULT_TOLERANCE: f64 = 0.6;

/// `?tolerance=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PeopleQuery {
    /// Faces at most this far apart are one person, 0 to 1 (default 0.6). Only pairs of
    /// images the workers linked are compared, so above the workers' tolerance it changes
    /// nothing.
    pub tolerance: Option<f64>,
    /// How many of the newest stored images to consider, 1 to 1000 (default 200).
    pub limit: Option<usize>,
}

/// People found in the newest images.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PeopleList {
    /// Largest group first.
    pub people: Vec<PersonView>,
}

/// One person: the images showing them and a face to show.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PersonView {
    /// Images with a face of this person, nearest to the shown face first, no repeats.
    pub images: Vec<String>,
    /// The names of those images, sorted, no repeats.
    pub names: Vec<String>,
    /// One face of theirs in an image that has a thumbnail (the largest such face);
    /// absent when none of their images has a thumbnail and a layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face: Option<FaceView>,
}

/// A face to crop from a thumbnail: scale the box by thumbnail width / `width`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FaceView {
    /// The image (its thumbnail is `/api/v1/images/{hash}/thumbnail`).
    pub hash: String,
    /// The face's box, in image pixels.
    #[serde(rename = "box")]
    pub bbox: BoxView,
    /// The image's width in pixels.
    pub width: u32,
    /// The image's height in pixels.
    pub height: u32,
}

/// Faces of the newest images, grouped into people.
#[utoipa::path(get, path = "/api/v1/people", tag = "images", params(PeopleQuery),
    responses(
        (status = 200, description = "People, largest group first", body = PeopleList),
        (status = 400, description = "Bad tolerance or limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Index unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn people(
    State(api): State<Arc<Api>>,
    q: Result<Query<PeopleQuery>, QueryRejection>,
) -> Result<Json<PeopleList>, Problem> {
    let q = q.map(|Query(q)| q).map_err(|e| Problem::bad_request(format!("bad query: {}", e.body_text())))?;
    let tolerance = q.tolerance.unwrap_or(DEFAULT_TOLERANCE);
    if !(0.0..=1.0).contains(&tolerance) {
        return Err(Problem::bad_request(format!("tolerance must be between 0 and 1, got {tolerance}")));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(format!("limit must be between 1 and {MAX_LIMIT}, got {limit}")));
    }
    let records = newest(&api, limit).await.map_err(|e| index_problem(&api, &e))?;
    Ok(Json(PeopleList { people: people_of(&records, tolerance) }))
}

/// The newest `limit` stored images.
async fn newest(api: &Api, limit: usize) -> Result<Vec<ImageRecord>, IndexError> {
    let index = &api.ports.index;
    let (mut records, mut cursor) = (Vec::new(), None);
    let mut seen = BTreeSet::new();
    while records.len() < limit {
        let page = index.recent((limit - records.len()).min(100), cursor).await?;
        for hash in page.hashes {
            if seen.insert(hash.clone())
                && let Some(record) = index.image(&hash).await?
            {
                records.push(record);
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(records)
}

/// Groups the faces of `records` (comparing linked images only) and picks each person's
/// face to show.
fn people_of(records: &[ImageRecord], tolerance: f64) -> Vec<PersonView> {
    let by_hash: HashMap<&ImageHash, &ImageRecord> = records.iter().map(|r| (&r.hash, r)).collect();
    let faces: Vec<(FaceRef, Encoding)> = records
        .iter()
        .flat_map(|r| r.faces.iter().enumerate().map(|(face, e)| (FaceRef { hash: r.hash.clone(), face }, *e)))
        .collect();
    let links: Vec<(ImageHash, ImageHash)> = records
        .iter()
        .flat_map(|r| {
            r.matches
                .iter()
                // An image-level distance over the tolerance: no face pair can be within it.
                // NaN (linked by another program, distance unknown): compare.
                .filter(|m| {
                    r.hash < m.hash && by_hash.contains_key(&m.hash) && (m.distance.is_nan() || m.distance <= tolerance)
                })
                .map(|m| (r.hash.clone(), m.hash.clone()))
        })
        .collect();
    let encoding = |f: &FaceRef| by_hash[&f.hash].faces[f.face];
    group_linked(&faces, &links, tolerance)
        .into_iter()
        .map(|group| {
            let shown = group
                .iter()
                .filter_map(|f| shown_face(by_hash[&f.hash], &encoding(f)).map(|v| (f, v)))
                .max_by_key(|(_, v)| (v.bbox.bottom - v.bbox.top) * (v.bbox.right - v.bbox.left));
            let mut nearest: Vec<(f64, &ImageHash)> = group
                .iter()
                .map(|f| (shown.as_ref().map_or(0.0, |(s, _)| encoding(s).distance(&encoding(f))), &f.hash))
                .collect();
            nearest.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
            let mut images: Vec<String> = Vec::new();
            for (_, hash) in nearest {
                if !images.iter().any(|h| h == hash.as_str()) {
                    images.push(hash.to_string());
                }
            }
            let names: BTreeSet<String> = group.iter().flat_map(|f| by_hash[&f.hash].names.iter().cloned()).collect();
            PersonView { images, names: names.into_iter().collect(), face: shown.map(|(_, v)| v) }
        })
        .collect()
}

/// The face's box when its image has a thumbnail and a layout naming it.
fn shown_face(record: &ImageRecord, encoding: &Encoding) -> Option<FaceView> {
    let layout = record.layout.as_ref().filter(|_| record.thumbnail)?;
    let id = encoding.id();
    let face = layout.faces.iter().find(|f| f.id == id)?;
    Some(FaceView {
        hash: record.hash.to_string(),
        bbox: BoxView::from(face),
        width: layout.width,
        height: layout.height,
    })
}
