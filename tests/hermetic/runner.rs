//! The loop: concurrency, graceful shutdown, panics.

use facerec::face::EncodedImage;
use facerec::hash::ImageHash;
use facerec::orchestrator::{Orchestrator, Settings};
use facerec::ports::Settlement;
use facerec::ports::{EncodeError, FaceEncoder};
use facerec::runner::{self, RunOptions};
use facerec_fakes::testkit::fixtures::hash_of;
use facerec_fakes::testkit::{Harness, message};
use facerec_fakes::{FakeSource, RecordingLogs};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn shutdown_finishes_and_settles_what_is_in_flight_and_takes_nothing_more() {
    let h = Harness::new();
    let (encoder, gate) = h.encoder.clone().gated();
    for (file, name) in [("obama.jpg", "1"), ("biden.jpg", "2"), ("obama2.jpg", "3"), ("obama3.jpg", "4")] {
        h.push(file, name);
    }
    let orchestrator =
        Arc::new(Orchestrator::new(encoder.clone(), h.index.clone(), h.logs.clone(), h.settings.clone()));
    let shutdown = CancellationToken::new();
    let options = RunOptions { concurrency: 2, ..h.options.clone() };
    let run = tokio::spawn(runner::run(
        orchestrator,
        Arc::new(h.source.clone()),
        options,
        shutdown.clone(),
        runner::ignore(),
    ));
    // Wait until two images are inside the encoder, then ask to stop.
    while encoder.calls().len() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    shutdown.cancel();
    gate.add_permits(10);
    let stats = run.await.unwrap().unwrap();
    assert_eq!(stats.taken, 2);
    assert_eq!(stats.acked, 2);
    assert_eq!(h.source.unsettled(), 0);
    assert_eq!(encoder.calls().len(), 2, "nothing taken after the signal");
    assert!(h.index.inner().records().len() == 2);
}

#[tokio::test]
async fn a_panic_is_a_failed_attempt_bounded_by_max_attempts_never_left_unsettled() {
    // Not a mockall mock: a panic inside one poisons the mock for later calls.
    struct Exploding;
    #[async_trait::async_trait]
    impl FaceEncoder for Exploding {
        async fn encode(&self, _: &ImageHash, _: &[u8]) -> Result<EncodedImage, EncodeError> {
            panic!("dlib exploded")
        }
        fn fingerprint(&self) -> String {
            "exploding".into()
        }
    }
    let encoder = Exploding;
    let source = FakeSource::new();
    source.push(message(hash_of("obama.jpg").as_str(), "a"));
    let mut settings = Settings::for_host("h");
    settings.max_attempts = 2;
    let index = facerec::adapters::embedded_index::EmbeddedIndex::in_memory();
    let orchestrator = Arc::new(Orchestrator::new(encoder, index, RecordingLogs::new(), settings));
    let options =
        RunOptions { concurrency: 1, retry_base: Duration::from_millis(1), retry_max: Duration::from_millis(1) };
    runner::run(orchestrator, Arc::new(source.clone()), options, CancellationToken::new(), runner::ignore())
        .await
        .unwrap();
    let s: Vec<Settlement> = source.settlements().into_iter().map(|(_, s)| s).collect();
    assert_eq!(s.len(), 2);
    assert!(matches!(&s[0], Settlement::Requeue { reason } if reason.contains("dlib exploded")), "{s:?}");
    assert!(matches!(&s[1], Settlement::DeadLetter { reason } if reason.contains("dlib exploded")));
    assert_eq!(source.unsettled(), 0);
}

#[tokio::test]
async fn two_images_of_one_person_racing_are_still_linked() {
    let mut h = Harness::new();
    h.options.concurrency = 2;
    h.push("obama.jpg", "a");
    h.push("obama3.jpg", "b");
    h.run().await;
    assert!(h.matches_of(&hash_of("obama.jpg")).await.contains(&hash_of("obama3.jpg")));
    assert!(h.matches_of(&hash_of("obama3.jpg")).await.contains(&hash_of("obama.jpg")));
}
