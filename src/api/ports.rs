//! What the REST front-end needs besides the pipeline's ports ([`FaceIndex`] for reads,
//! [`ImageQueue`] for submissions, [`LogSink`] for the `logs` exchange): a URL fetcher
//! and a readiness probe.
//!
//! [`FaceIndex`]: crate::ports::FaceIndex
//! [`ImageQueue`]: crate::ports::ImageQueue
//! [`LogSink`]: crate::ports::LogSink

use async_trait::async_trait;

/// Why a URL could not be turned into image bytes. Every variant is the client's problem
/// (a 4xx) except [`FetchError::Unreachable`], which may pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute http(s) URL, or too long.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The host resolves to an address the server may not contact (loopback, private, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// The host did not resolve, refused the connection, or timed out.
    #[error("cannot fetch the URL: {0}")]
    Unreachable(String),
    /// The server answered, but not with 200 (or redirected too often).
    #[error("the URL's server answered {0}")]
    BadResponse(String),
    /// The body is larger than the image limit.
    #[error("the image at the URL is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not an image of a supported format.
    #[error("the URL's content is not an image (JPEG, PNG, GIF, BMP or WebP)")]
    NotAnImage,
}

/// Downloads images named by URL, on behalf of clients.
///
/// Contract: an implementation used in production MUST refuse addresses the server should
/// not reach for a client (server-side request forgery), MUST bound time and size, and
/// MUST return only bytes that look like an image.
#[async_trait]
pub trait UrlFetcher: Send + Sync {
    /// The body at `url`.
    ///
    /// # Errors
    /// See [`FetchError`].
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError>;
}

/// Whether the front-end can do its job now (`/readyz`).
pub trait Readiness: Send + Sync {
    /// Why not, or `None` when ready.
    fn not_ready(&self) -> Option<String>;
}
