//! The optional bearer token (`FACEREC_API_TOKEN` / `FACEREC_API_TOKEN_FILE`): when set,
//! every `/scan/*`, `/match/*` and `/api/v1/*` route requires `Authorization: Bearer <token>`;
//! `/healthz`, `/readyz`, `/metrics` and the page stay open. Compared in constant time.

use super::Api;
use super::problem::Problem;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq as _;

/// Middleware: passes the request on when no token is configured or the right one is sent.
pub async fn require_token(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let Some(token) = &api.settings.token else { return next.run(request).await };
    let sent = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(sent.as_bytes().ct_eq(token.expose().as_bytes())) {
        return next.run(request).await;
    }
    let mut response =
        Problem::new(StatusCode::UNAUTHORIZED, "this route needs `Authorization: Bearer <FACEREC_API_TOKEN>`")
            .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
