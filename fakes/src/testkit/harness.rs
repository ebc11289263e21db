//! [`Harness`]: the orchestrator and runner wired like production, but over the fakes and
//! the recorded encodings; no servers, no dlib.

use crate::testkit::fixtures::{encoded, hash_of, recording};
use crate::testkit::message::message;
use crate::{FakeEncoder, FakeSource, FlakyIndex, RecordingLogs, Timeline};
use facerec::adapters::embedded_index::EmbeddedIndex;
use facerec::hash::ImageHash;
use facerec::orchestrator::{Orchestrator, Settings};
use facerec::ports::FaceIndex;
use facerec::runner::{self, RunOptions, RunStats};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The host name a harness's orchestrator puts in its log routing keys.
pub const HOST: &str = "test-host";

/// Everything a test needs, wired like production but over fakes.
pub struct Harness {
    /// The queue the runner takes from.
    pub source: FakeSource,
    /// Knows every recorded sample image.
    pub encoder: FakeEncoder,
    /// An in-memory index that fails on command.
    pub index: FlakyIndex<EmbeddedIndex>,
    /// Every published log line.
    pub logs: RecordingLogs,
    /// Source and index events, in order.
    pub timeline: Timeline,
    /// Orchestrator settings, for host [`HOST`].
    pub settings: Settings,
    /// Runner options: two in flight, millisecond retries.
    pub options: RunOptions,
}

impl Harness {
    /// A harness whose encoder knows every recorded sample image.
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

    /// Queues a recorded sample image under a name.
    pub fn push(&self, file: &str, name: &str) {
        self.source.push(message(hash_of(file).as_str(), name));
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

    /// Hashes of the images matching the image `hash`.
    pub async fn matches_of(&self, hash: &ImageHash) -> BTreeSet<ImageHash> {
        let record = self.index.image(hash).await.unwrap().expect("image stored");
        record.matches.into_iter().map(|m| m.hash).collect()
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}
