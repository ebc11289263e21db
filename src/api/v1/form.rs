//! Image files out of a `multipart/form-data` body, shared by `POST /api/v1/images`
//! (several files, each named by its filename) and `POST /api/v1/forget` (one photo):
//! parts named `file`, each within the one-image limit (`max_body_bytes`) and sniffed as
//! an image, the whole request within [`TOTAL_FACTOR`] times that, received within the
//! body time limit. The first bad part is the error, naming it.

use crate::api::Api;
use crate::api::problem::Problem;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderMap, Request, StatusCode, header};

/// The whole request may be this many times the one-image limit (`max_body_bytes`).
pub const TOTAL_FACTOR: usize = 2;

/// What a route accepts.
#[derive(Debug, Clone, Copy)]
pub struct FormRules {
    /// Most files in one request (413 past it).
    pub max_files: usize,
    /// Whether every part needs a filename (checked like any image name).
    pub filenames: bool,
}

/// One file of the form, checked.
#[derive(Debug)]
pub struct FormFile {
    /// Its filename, when `FormRules::filenames` (else `None`: not read).
    pub name: Option<String>,
    /// Its bytes: not empty, within the limit, sniffed as an image.
    pub bytes: Vec<u8>,
}

/// Whether the request is `multipart/form-data`.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// Every `file` part of the form, checked (at least one).
pub(super) async fn read_files(
    api: &Api,
    headers: HeaderMap,
    body: Body,
    rules: FormRules,
) -> Result<Vec<FormFile>, Problem> {
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
    tokio::time::timeout(api.settings.body_timeout, read_parts(api, multipart, per_part, rules))
        .await
        .map_err(|_| Problem::new(StatusCode::REQUEST_TIMEOUT, "the body was not received in time"))?
}

async fn read_parts(
    api: &Api,
    mut multipart: Multipart,
    per_part: usize,
    rules: FormRules,
) -> Result<Vec<FormFile>, Problem> {
    let mut parts = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(parts.len() + 1, &e)),
        };
        let n = parts.len() + 1;
        let mut what = format!("part {n}");
        if field.name() != Some("file") {
            return Err(Problem::bad_request(format!(
                "{what} is named {:?}; every part must be named \"file\"",
                field.name().unwrap_or("")
            )));
        }
        if n > rules.max_files {
            let files = if rules.max_files == 1 { "file" } else { "files" };
            return Err(too_large(format!("more than {} {files} in one request", rules.max_files)));
        }
        let name = match field.file_name().map(str::to_owned) {
            Some(name) => {
                what = format!("{what} ({})", crate::log_lines::escape(&name));
                if rules.filenames {
                    api.check_name(&format!("filename of {what}"), &name)?;
                }
                Some(name)
            }
            None if rules.filenames => {
                return Err(Problem::bad_request(format!("{what} has no filename (it is the image's name)")));
            }
            None => None,
        };
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
        crate::api::submit::check_image(&what, &bytes)?;
        parts.push(FormFile { name: name.filter(|_| rules.filenames), bytes });
    }
    if parts.is_empty() {
        return Err(Problem::bad_request("no part named \"file\": send the image file(s) as parts named \"file\""));
    }
    Ok(parts)
}

fn too_large(detail: String) -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, detail)
}

/// A malformed body or one over the whole-request limit (also when no `Content-Length`
/// announced it: the limit error is then deep in the source chain).
fn multipart_error(part: usize, e: &axum::extract::multipart::MultipartError) -> Problem {
    let text = e.body_text();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut over = false;
    while let Some(s) = source {
        over |= s.is::<http_body_util::LengthLimitError>() || s.to_string().contains("length limit");
        source = s.source();
    }
    if over || e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(format!("the request is over its size limit at part {part}"))
    } else {
        Problem::bad_request(format!("bad multipart body at part {part}: {text}"))
    }
}
