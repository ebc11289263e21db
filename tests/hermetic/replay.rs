//! Captured messages (fixtures/messages, captured from a real queue fed by a pika
//! producer) replayed through the production wiring of `facerec replay`: file source,
//! recorded encoder, embedded index.

use facerec::adapters::embedded_index::EmbeddedIndex;
use facerec::adapters::file_source::{FileKind, FileSource};
use facerec::adapters::recorded_encoder::RecordedEncoder;
use facerec::orchestrator::{Orchestrator, Settings};
use facerec::ports::{FaceIndex, Settlement};
use facerec::runner::{self, RunOptions};
use facerec_fakes::RecordingLogs;
use facerec_fakes::testkit::fixtures::{fixtures_dir, hash_of, recorded_encodings_path};
use facerec_fakes::testkit::harness::HOST;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn every_wire_form_a_seed_producer_sends_is_understood() {
    let source = Arc::new(FileSource::new(FileKind::Captures, &[fixtures_dir().join("messages")]).unwrap());
    let encoder = RecordedEncoder::load(&recorded_encodings_path()).unwrap();
    let index = Arc::new(EmbeddedIndex::in_memory());
    let orchestrator =
        Arc::new(Orchestrator::new(encoder, index.clone(), RecordingLogs::new(), Settings::for_host(HOST)));
    let options = RunOptions { concurrency: 1, ..RunOptions::default() };
    let stats =
        runner::run(orchestrator, source.clone(), options, CancellationToken::new(), runner::ignore()).await.unwrap();
    assert_eq!((stats.taken, stats.acked, stats.dead_lettered), (10, 6, 4));

    // JSON, jsonpickle {"py/b64"} and raw-with-headers all land; the repeat adds a name.
    let obama = index.image(&hash_of("obama.jpg")).await.unwrap().unwrap();
    assert_eq!(obama.names.iter().cloned().collect::<Vec<_>>(), vec!["copies/obama-again.jpg", "obama.jpg"]);
    assert_eq!(index.hash_of("https://example.org/obama3.jpg").await.unwrap(), Some(hash_of("obama3.jpg")));
    assert_eq!(index.hash_of("uploads/32bit.png").await.unwrap(), Some(hash_of("32bit.png")));
    assert_eq!(obama.matches.len(), 3, "obama2, obama3, 32bit");

    let reasons: Vec<String> = source
        .settled()
        .into_iter()
        .filter_map(|(_, s)| match s {
            Settlement::DeadLetter { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(reasons[0].contains("not valid JSON"), "{reasons:?}");
    assert!(reasons[1].contains("no `name` field"), "{reasons:?}");
    assert!(reasons[2].contains("`image` must be"), "{reasons:?}");
    assert!(reasons[3].contains("no `name` header"), "{reasons:?}");
}
