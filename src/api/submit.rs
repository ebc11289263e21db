//! What every submission route shares: reading the body within the size and time limits,
//! checking names, handing the image to the [`ImageQueue`](crate::ports::ImageQueue), and
//! remembering recent submissions so `GET /api/v1/images/{hash}` can say `queued`.

use super::Api;
use super::problem::Problem;
use crate::hash::ImageHash;
use crate::log_lines::escape;
use crate::ports::QueueError;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Hashes submitted by this process lately (bounded; oldest forgotten first).
#[derive(Default)]
pub struct Recent(Mutex<(HashSet<ImageHash>, VecDeque<ImageHash>)>);

impl Recent {
    const CAPACITY: usize = 100_000;

    fn insert(&self, hash: &ImageHash) {
        let mut guard = self.0.lock().expect("recent lock");
        let (set, order) = &mut *guard;
        if set.insert(hash.clone()) {
            order.push_back(hash.clone());
            if order.len() > Self::CAPACITY
                && let Some(old) = order.pop_front()
            {
                set.remove(&old);
            }
        }
    }

    /// Forgets `hash` (it was erased: no longer "queued"). Its place in the order stays
    /// until it comes up, which at worst forgets a later re-submission early.
    pub fn remove(&self, hash: &ImageHash) {
        self.0.lock().expect("recent lock").0.remove(hash);
    }

    /// Whether `hash` was submitted by this process lately.
    pub fn contains(&self, hash: &ImageHash) -> bool {
        self.0.lock().expect("recent lock").0.contains(hash)
    }
}

impl Api {
    /// The request body, refused with 413 past the limit and 408 when it is too slow.
    pub(super) async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, Problem> {
        let limit = self.settings.max_body_bytes;
        let too_large =
            || Problem::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {limit} bytes"));
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        match tokio::time::timeout(self.settings.body_timeout, axum::body::to_bytes(body, limit)).await {
            Err(_) => Err(Problem::new(StatusCode::REQUEST_TIMEOUT, "the body was not received in time")),
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) => {
                let over = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                if over { Err(too_large()) } else { Err(Problem::bad_request(format!("cannot read the body: {e}"))) }
            }
        }
    }

    /// Refuses empty names, names over the limit and names with control characters.
    pub(super) fn check_name(&self, what: &str, name: &str) -> Result<(), Problem> {
        if name.is_empty() {
            return Err(Problem::bad_request(format!("the {what} is empty")));
        }
        if name.len() > self.settings.max_name_bytes {
            return Err(Problem::bad_request(format!(
                "the {what} is {} bytes long, the limit is {}",
                name.len(),
                self.settings.max_name_bytes
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Problem::bad_request(format!("the {what} contains a control character")));
        }
        Ok(())
    }

    /// Queues an image; `Ok` only once the broker confirmed it.
    pub(super) async fn queue_image(&self, route: &str, name: &str, image: &[u8]) -> Result<ImageHash, Problem> {
        check_image("the body", image)?;
        self.shed().await?;
        let hash = ImageHash::of_bytes(image);
        match self.ports.queue.submit(&hash, name, image).await {
            Ok(()) => {
                self.queued.insert(&hash);
                self.metrics.submission("accepted");
                self.debug(&format!("{route}: {hash} \"{}\" queued ({} bytes)", escape(name), image.len())).await;
                Ok(hash)
            }
            Err(e) => {
                self.metrics.submission(match e {
                    QueueError::Unavailable(_) => "unavailable",
                    QueueError::Rejected(_) => "rejected",
                });
                self.debug(&format!("{route}: {hash} \"{}\" not queued: {e}", escape(name))).await;
                Err(self.unavailable(format!("the image was not queued, send it again later: {e}")))
            }
        }
    }
}

/// Refuses an empty `image` (400) and one that does not sniff as a supported format
/// (415); `what` names it in the detail ("the body", "part 2 (a.png)").
pub(crate) fn check_image(what: &str, image: &[u8]) -> Result<(), Problem> {
    if image.is_empty() {
        return Err(Problem::bad_request(format!("{what} is empty: send the image file itself")));
    }
    if !super::fetch::is_image(image) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{what} is not an image (JPEG, PNG, GIF, BMP or WebP)"),
        ));
    }
    Ok(())
}

/// A JSON object body as `T`; anything else (arrays included, which serde would accept
/// for a struct) is 400 with `expected` in the detail.
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, Problem> {
    let bad = |why: String| Problem::bad_request(format!("the body must be JSON {expected}: {why}"));
    match serde_json::from_slice::<serde_json::Value>(body).map_err(|e| bad(e.to_string()))? {
        value @ serde_json::Value::Object(_) => serde_json::from_value(value).map_err(|e| bad(e.to_string())),
        _ => Err(bad("not an object".into())),
    }
}
