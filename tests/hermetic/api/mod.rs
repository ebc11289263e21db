//! The REST front-end's router over fakes (no socket: `tower::ServiceExt::oneshot`), and
//! the SSRF-safe fetcher against loopback origin servers.

mod broker_down;
mod course;
mod errors;
mod forget;
mod page;
mod shedding;
mod ssrf;
mod v1;
mod views;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use facerec::adapters::embedded_index::EmbeddedIndex;
use facerec::api::ports::Readiness;
use facerec::api::{Api, ApiPorts, ApiSettings};
use facerec::hash::ImageHash;
use facerec::ports::{FaceEncoder, FaceIndex, ImageRecord, IndexError, NewImage};
use facerec_fakes::{FakeFetcher, FakeQueue, RecordingLogs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tower::ServiceExt as _;

/// Bytes that sniff as a PNG (the fakes never decode them).
pub fn png(tag: &str) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend_from_slice(tag.as_bytes());
    b
}

/// A `multipart/form-data` POST to `uri`: one part per (field name, filename, bytes).
pub fn multipart(uri: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Request<Body> {
    let boundary = "XyZ-boundary-0123";
    let mut body = Vec::new();
    for (field, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!("Content-Disposition: form-data; name=\"{field}\"; filename=\"{f}\"\r\n"),
            None => format!("Content-Disposition: form-data; name=\"{field}\"\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Request::post(uri)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(body))
        .unwrap()
}

/// `/readyz`'s answer, switchable.
#[derive(Default)]
pub struct Switch(AtomicBool);

impl Readiness for Switch {
    fn not_ready(&self) -> Option<String> {
        self.0.load(Ordering::Relaxed).then(|| "broker link down".to_owned())
    }
}

/// A router over fakes, with handles on each fake.
pub struct Front {
    pub router: Router,
    pub index: Arc<EmbeddedIndex>,
    pub queue: FakeQueue,
    pub fetcher: FakeFetcher,
    pub logs: RecordingLogs,
    pub down: Arc<Switch>,
}

impl Front {
    pub fn new() -> Self {
        Self::with(ApiSettings::default())
    }

    pub fn with(settings: ApiSettings) -> Self {
        let index = Arc::new(EmbeddedIndex::in_memory());
        Self::over(index.clone() as Arc<dyn FaceIndex>, index, settings)
    }

    pub fn over(reads: Arc<dyn FaceIndex>, index: Arc<EmbeddedIndex>, settings: ApiSettings) -> Self {
        Self::build(reads, index, settings, None)
    }

    /// A router that can erase by photo: `encoder` finds the photo's faces (`facerec serve`).
    pub fn with_encoder(encoder: Arc<dyn FaceEncoder>, settings: ApiSettings) -> Self {
        let index = Arc::new(EmbeddedIndex::in_memory());
        Self::build(index.clone() as Arc<dyn FaceIndex>, index, settings, Some(encoder))
    }

    /// A router over these ports (`encoder`: `None` as in `facerec api`).
    pub fn build(
        reads: Arc<dyn FaceIndex>,
        index: Arc<EmbeddedIndex>,
        settings: ApiSettings,
        encoder: Option<Arc<dyn FaceEncoder>>,
    ) -> Self {
        let (queue, fetcher, logs, down) = (FakeQueue::new(), FakeFetcher::new(), RecordingLogs::new(), Arc::default());
        let settings = ApiSettings { hostname: facerec_fakes::testkit::harness::HOST.into(), ..settings };
        let api = Api::new(
            ApiPorts {
                index: reads,
                queue: Arc::new(queue.clone()),
                fetcher: Arc::new(fetcher.clone()),
                logs: Arc::new(logs.clone()),
                readiness: Arc::clone(&down) as Arc<dyn Readiness>,
                encoder,
            },
            settings,
        );
        Self { router: facerec::api::router(api), index, queue, fetcher, logs, down }
    }

    /// Stores a recorded test image under `names` (the first one adds the faces), with its
    /// layout and no thumbnail.
    pub async fn store(&self, file: &str, names: &[&str]) -> ImageHash {
        self.store_with(file, names, None).await
    }

    /// Stores a recorded test image with its layout and `thumbnail`.
    pub async fn store_with(&self, file: &str, names: &[&str], thumbnail: Option<Vec<u8>>) -> ImageHash {
        let hash = facerec_fakes::testkit::fixtures::hash_of(file);
        let encoded = facerec_fakes::testkit::fixtures::encoded(file);
        let image = NewImage {
            width: encoded.width,
            height: encoded.height,
            boxes: encoded.faces.iter().map(|f| f.bbox).collect(),
            thumbnail,
            ..NewImage::bare(hash.clone(), names[0], encoded.faces.iter().map(|f| f.encoding).collect(), "fp-test")
        };
        self.index.add_image(&image, 0.6).await.unwrap();
        for n in &names[1..] {
            self.index.add_name(&hash, n).await.unwrap();
        }
        hash
    }

    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec();
        let reply = Reply { status, headers, body };
        if !status.is_success() {
            reply.assert_problem(status);
        }
        reply
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.call(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    pub async fn post(&self, uri: &str, body: impl Into<Body>) -> Reply {
        self.call(Request::post(uri).body(body.into()).unwrap()).await
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every error is RFC 9457 problem+json with the status repeated and a detail.
    pub fn assert_problem(&self, status: StatusCode) {
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{status}: {}", self.text());
        let p = self.json();
        assert_eq!(p["status"], status.as_u16(), "{p}");
        assert_eq!(p["type"], "about:blank");
        assert_eq!(p["title"], status.canonical_reason().unwrap());
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
    }

    /// The problem's detail.
    pub fn detail(&self) -> String {
        self.json()["detail"].as_str().unwrap_or_default().to_owned()
    }
}

/// An index whose reads fail (Redis down).
pub struct DownIndex;

#[async_trait::async_trait]
impl FaceIndex for DownIndex {
    async fn is_known(&self, _: &ImageHash) -> Result<bool, IndexError> {
        Err(IndexError::Unavailable("down".into()))
    }
    async fn add_name(&self, _: &ImageHash, _: &str) -> Result<(), IndexError> {
        Err(IndexError::Unavailable("down".into()))
    }
    async fn add_image(&self, _: &NewImage, _: f64) -> Result<Vec<facerec::ports::ImageMatch>, IndexError> {
        Err(IndexError::Unavailable("down".into()))
    }
    async fn image(&self, _: &ImageHash) -> Result<Option<ImageRecord>, IndexError> {
        Err(IndexError::Unavailable("connection refused".into()))
    }
    async fn hash_of(&self, _: &str) -> Result<Option<ImageHash>, IndexError> {
        Err(IndexError::Unavailable("connection refused".into()))
    }
    async fn thumbnail(&self, _: &ImageHash) -> Result<Option<Vec<u8>>, IndexError> {
        Err(IndexError::Unavailable("connection refused".into()))
    }
    async fn record_failure(&self, _: &ImageHash, _: &str) -> Result<(), IndexError> {
        Err(IndexError::Unavailable("down".into()))
    }
    async fn failure(&self, _: &ImageHash) -> Result<Option<facerec::ports::ImageFailure>, IndexError> {
        Err(IndexError::Unavailable("connection refused".into()))
    }
    async fn recent(&self, _: usize, _: Option<String>) -> Result<facerec::ports::ImagePage, IndexError> {
        Err(IndexError::Unavailable("connection refused".into()))
    }
    async fn forget(&self, _: &[ImageHash]) -> Result<facerec::ports::Forgotten, IndexError> {
        Err(IndexError::Unavailable("down".into()))
    }
    async fn find_faces(
        &self,
        _: &[facerec::face::Encoding],
        _: f64,
    ) -> Result<Vec<facerec::ports::ImageMatch>, IndexError> {
        Err(IndexError::Unavailable("down".into()))
    }
}
