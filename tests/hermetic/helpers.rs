//! Shared set-up: recorded encodings, message builders, a wired orchestrator.

use base64::Engine as _;
use facerec::adapters::embedded_index::EmbeddedIndex;
use facerec::adapters::recorded_encoder::Recording;
use facerec::face::EncodedImage;
use facerec::hash::ImageHash;
use facerec::orchestrator::{Orchestrator, Settings};
use facerec::ports::FaceIndex;
use facerec::runner::{self, RunOptions, RunStats};
use facerec_fakes::{FakeEncoder, FakeSource, FlakyIndex, RecordingLogs, Timeline};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const HOST: &str = "test-host";

/// The encodings `facerec record` saved from the face_recognition 1.3.0 test images.
pub fn recording() -> &'static Recording {
    static RECORDING: OnceLock<Recording> = OnceLock::new();
    RECORDING.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/encodings/face_recognition_test_images.json");
        Recording::load(&path).expect("recorded encodings")
    })
}

/// Hash of a recorded test image, by file name (`"obama.jpg"`).
pub fn hash_of(file: &str) -> ImageHash {
    recording().by_name(file).unwrap_or_else(|| panic!("{file} not recorded")).hash.clone()
}

/// What the encoder found in a recorded test image.
pub fn encoded(file: &str) -> EncodedImage {
    let r = recording().by_name(file).unwrap();
    EncodedImage { width: r.width, height: r.height, faces: r.faces.clone(), times: Default::default() }
}

/// A seed-style JSON message. The image bytes are a stand-in: encoders in these tests
/// answer by hash, and the real images are not part of the repository.
pub fn message(hash: &ImageHash, name: &str) -> Vec<u8> {
    let image = base64::engine::general_purpose::STANDARD.encode(format!("stand-in for {hash}"));
    serde_json::json!({ "hash": hash.as_str(), "name": name, "image": image }).to_string().into_bytes()
}

/// Everything a test needs, wired like production but over fakes.
pub struct Harness {
    pub source: FakeSource,
    pub encoder: FakeEncoder,
    pub index: FlakyIndex<EmbeddedIndex>,
    pub logs: RecordingLogs,
    pub timeline: Timeline,
    pub settings: Settings,
    pub options: RunOptions,
}

impl Harness {
    /// A harness whose encoder knows every recorded test image.
    pub fn new() -> Self {
        let timeline = Timeline::new();
        let encoder = FakeEncoder::new();
        for image in &recording().images {
            encoder.set(&image.hash, Ok(encoded(&image.name)));
        }
        Self {
            source: FakeSource::with_timeline(timeline.clone()),
            encoder,
            index: FlakyIndex::new(EmbeddedIndex::in_memory()).with_timeline(timeline.clone()),
            logs: RecordingLogs::new(),
            timeline,
            settings: Settings::for_host(HOST),
            options: RunOptions {
                concurrency: 2,
                retry_base: Duration::from_millis(1),
                retry_max: Duration::from_millis(5),
            },
        }
    }

    /// Queues a recorded test image under a name.
    pub fn push(&self, file: &str, name: &str) {
        self.source.push(message(&hash_of(file), name));
    }

    /// Runs the queue dry (retries included) and checks nothing is left unsettled.
    pub async fn run(&self) -> RunStats {
        let orchestrator = Arc::new(Orchestrator::new(
            self.encoder.clone(),
            self.index.clone(),
            self.logs.clone(),
            self.settings.clone(),
        ));
        let stats = runner::run(
            orchestrator,
            Arc::new(self.source.clone()),
            self.options.clone(),
            CancellationToken::new(),
            runner::ignore(),
        )
        .await
        .expect("run");
        assert_eq!(self.source.unsettled(), 0, "every delivery must be settled");
        stats
    }

    /// Hashes of the images matching `file`'s image.
    pub async fn matches_of(&self, hash: &ImageHash) -> BTreeSet<ImageHash> {
        let record = self.index.image(hash).await.unwrap().expect("image stored");
        record.matches.into_iter().map(|m| m.hash).collect()
    }
}
