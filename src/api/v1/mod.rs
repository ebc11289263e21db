//! `/api/v1`: submit images (raw or a multipart form) and URLs, list images, read an
//! image's record, thumbnail and matches, group faces into people, follow events, erase an
//! image or every image of a person; the OpenAPI
//! 3.1 document at `/api/v1/openapi.json` is generated from these handlers ([`openapi`]).

pub mod erase;
pub mod events;
pub mod forget;
pub mod form;
pub mod images;
pub mod list;
pub mod openapi;
pub mod people;
pub mod upload;

use super::Api;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// The versioned routes.
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/v1/images", post(images::submit_image).get(list::list))
        .route("/api/v1/urls", post(images::submit_url))
        .route("/api/v1/images/{hash}", get(images::image).delete(erase::erase))
        .route("/api/v1/forget", post(forget::forget))
        .route("/api/v1/images/{hash}/matches", get(images::matches))
        .route("/api/v1/images/{hash}/thumbnail", get(images::thumbnail))
        .route("/api/v1/people", get(people::people))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/openapi.json", get(openapi::document))
}
