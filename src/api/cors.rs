//! CORS, off unless `FACEREC_API_CORS_ORIGINS` lists origins: then a request whose
//! `Origin` is listed (or any, with `*`) gets `Access-Control-Allow-Origin`, and a
//! preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered 204 here with
//! the methods and headers the API takes. Unlisted origins get no CORS headers at all, so
//! browsers keep them out; non-browser clients are unaffected either way.

use super::Api;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const METHODS: &str = "GET, POST, OPTIONS";
const HEADERS: &str = "authorization, content-type";

/// The middleware (installed only when origins are configured).
pub async fn cors(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let origins = &api.settings.cors_origins;
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .filter(|o| origins.iter().any(|a| a == "*" || o.as_bytes() == a.as_bytes()))
        .cloned();
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = match (&allowed, preflight) {
        (Some(_), true) => {
            let mut r = (StatusCode::NO_CONTENT, Body::empty()).into_response();
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(HEADERS));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            r
        }
        _ => next.run(request).await,
    };
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = allowed {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
    }
    response
}
