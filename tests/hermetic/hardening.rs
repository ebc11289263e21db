//! Issue 12, runner side: a message past its attempts is dead-lettered unprocessed, an
//! index outage spends no attempts and pauses the runner, an encode past its deadline is
//! dead-lettered and the runner goes on, a failed settlement pauses the runner.

use async_trait::async_trait;
use facerec::face::EncodedImage;
use facerec::hash::ImageHash;
use facerec::orchestrator::{Orchestrator, Outcome, Settings};
use facerec::ports::{Delivery, DeliveryId, EncodeError, FaceEncoder, FaceIndex, IndexError, KILLS_HEADER, Settlement};
use facerec::runner::{self, Observe, Report};
use facerec_fakes::testkit::fixtures::hash_of;
use facerec_fakes::testkit::{Harness, message};
use facerec_fakes::{FakeEncoder, FlakyIndex, RecordingLogs};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Every pause and resume the runner announced.
#[derive(Default)]
struct Pauses(Mutex<Vec<Option<String>>>);

impl Observe for Pauses {
    fn settled(&self, _: &Report) {}
    fn paused(&self, reason: Option<&str>) {
        self.0.lock().unwrap().push(reason.map(str::to_owned));
    }
}

impl Pauses {
    fn seen(&self) -> Vec<Option<String>> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_delivery_past_max_attempts_is_dead_lettered_without_being_processed() {
    let encoder = FakeEncoder::new();
    let index = FlakyIndex::new(facerec::adapters::embedded_index::EmbeddedIndex::in_memory());
    let mut settings = Settings::for_host("h");
    settings.max_attempts = 2;
    let o = Orchestrator::new(encoder.clone(), index.clone(), RecordingLogs::new(), settings);
    let headers = BTreeMap::from([(KILLS_HEADER.to_owned(), "2".to_owned())]);
    let body = message(hash_of("obama.jpg").as_str(), "a");
    let outcome = o.process(&Delivery { id: DeliveryId(1), body, headers, attempt: 3 }).await;
    match outcome {
        Outcome::Rejected { reason, .. } => assert!(reason.starts_with("killed the worker 2 times"), "{reason}"),
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert!(encoder.calls().is_empty(), "never processed again");
    assert!(index.calls().is_empty(), "never processed again");
}

#[tokio::test]
async fn an_index_outage_spends_no_attempts_and_pauses_the_runner_until_the_index_answers() {
    let mut h = Harness::new();
    h.settings.max_attempts = 2;
    h.push("obama.jpg", "a");
    h.push("biden.jpg", "b");
    h.index.go_down(IndexError::Unavailable("redis down".into()));
    let orchestrator =
        Arc::new(Orchestrator::new(h.encoder.clone(), h.index.clone(), h.logs.clone(), h.settings.clone()));
    let pauses = Arc::new(Pauses::default());
    let run = tokio::spawn(runner::run(
        orchestrator,
        Arc::new(h.source.clone()),
        h.options.clone(),
        CancellationToken::new(),
        pauses.clone(),
    ));
    // Far longer than the whole retry budget (2 attempts of 1-5 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.source.dead_letters().is_empty(), "an outage dead-letters nothing: {:?}", h.source.dead_letters());
    let settled: Vec<Settlement> = h.source.settlements().into_iter().map(|(_, s)| s).collect();
    assert!(!settled.is_empty() && settled.iter().all(|s| matches!(s, Settlement::Release { .. })), "{settled:?}");
    assert!(settled.len() <= 4, "no delivery taken while paused: {settled:?}");
    assert!(matches!(pauses.seen().first(), Some(Some(r)) if r.contains("redis down")), "{:?}", pauses.seen());
    h.index.recover();
    let stats = tokio::time::timeout(Duration::from_secs(20), run).await.expect("resumes").unwrap().unwrap();
    assert_eq!(stats.acked, 2);
    assert!(h.source.dead_letters().is_empty());
    assert_eq!(pauses.seen().last(), Some(&None), "resumed");
    assert!(h.index.is_known(&hash_of("obama.jpg")).await.unwrap());
}

/// Never answers for `stuck`; recorded results for the rest.
#[derive(Clone)]
struct Hangs {
    stuck: ImageHash,
    rest: FakeEncoder,
}

#[async_trait]
impl FaceEncoder for Hangs {
    async fn encode(&self, hash: &ImageHash, image: &[u8]) -> Result<EncodedImage, EncodeError> {
        if *hash == self.stuck {
            std::future::pending::<()>().await;
        }
        self.rest.encode(hash, image).await
    }
    fn fingerprint(&self) -> String {
        "hangs".into()
    }
}

#[tokio::test]
async fn an_encode_past_its_deadline_is_dead_lettered_and_the_runner_goes_on() {
    let mut h = Harness::new();
    h.options.concurrency = 1;
    h.settings.max_encode = Duration::from_millis(200);
    let bomb = ImageHash::parse("scan-bomb").unwrap();
    h.source.push(message(bomb.as_str(), "bomb.jpg"));
    h.push("obama.jpg", "fine.jpg");
    let encoder = Hangs { stuck: bomb, rest: h.encoder.clone() };
    let orchestrator = Arc::new(Orchestrator::new(encoder, h.index.clone(), h.logs.clone(), h.settings.clone()));
    let run = runner::run(
        orchestrator,
        Arc::new(h.source.clone()),
        h.options.clone(),
        CancellationToken::new(),
        runner::ignore(),
    );
    let stats = tokio::time::timeout(Duration::from_secs(10), run).await.expect("not stuck").unwrap();
    assert_eq!((stats.acked, stats.dead_lettered), (1, 1));
    let reasons: Vec<String> = h.source.dead_letters().into_iter().map(|(_, r)| r).collect();
    assert!(reasons[0].contains("FACEREC_MAX_ENCODE_SECONDS"), "{reasons:?}");
}

#[tokio::test]
async fn a_failed_settlement_pauses_the_runner() {
    let h = Harness::new();
    h.push("obama.jpg", "a");
    h.source.fail_next_settles(1);
    let orchestrator =
        Arc::new(Orchestrator::new(h.encoder.clone(), h.index.clone(), h.logs.clone(), h.settings.clone()));
    let pauses = Arc::new(Pauses::default());
    runner::run(orchestrator, Arc::new(h.source.clone()), h.options.clone(), CancellationToken::new(), pauses.clone())
        .await
        .unwrap();
    assert_eq!(h.source.acked(), 1);
    let seen = pauses.seen();
    assert!(matches!(seen.first(), Some(Some(r)) if r.contains("settling failed")), "{seen:?}");
    assert_eq!(seen.last(), Some(&None));
}

/// Recorded results, with a memory budget of `budget_mib` MiB that tests can spend.
#[derive(Clone)]
struct Budgeted {
    memory: Arc<tokio::sync::Semaphore>,
    asked: Arc<Mutex<Vec<usize>>>,
    rest: FakeEncoder,
}

#[async_trait]
impl FaceEncoder for Budgeted {
    async fn encode(&self, hash: &ImageHash, image: &[u8]) -> Result<EncodedImage, EncodeError> {
        self.rest.encode(hash, image).await
    }
    fn fingerprint(&self) -> String {
        "budgeted".into()
    }
    async fn reserve_memory(&self, bytes: usize) -> Option<facerec::ports::MemoryReservation> {
        self.asked.lock().unwrap().push(bytes);
        let mib = u32::try_from(bytes.div_ceil(1 << 20)).unwrap().clamp(1, 8);
        self.memory.clone().acquire_many_owned(mib).await.ok().map(facerec::ports::MemoryReservation::new)
    }
}

#[tokio::test]
async fn a_message_is_not_parsed_while_the_encoders_memory_budget_is_spent() {
    let memory = Arc::new(tokio::sync::Semaphore::new(8));
    let encoder = Budgeted { memory: memory.clone(), asked: Arc::default(), rest: Harness::new().encoder.clone() };
    let index = FlakyIndex::new(facerec::adapters::embedded_index::EmbeddedIndex::in_memory());
    let o = Arc::new(Orchestrator::new(encoder.clone(), index.clone(), RecordingLogs::new(), Settings::for_host("h")));
    // A valid message padded to 3 MB with a field nobody reads.
    let hash = hash_of("obama.jpg");
    let mut body = message(hash.as_str(), "padded.jpg");
    let pad = format!(",\"pad\":\"{}\"}}", "0".repeat(3 << 20));
    body.truncate(body.len() - 1);
    body.extend_from_slice(pad.as_bytes());

    // Images being encoded hold the whole budget.
    let held = memory.clone().acquire_many_owned(8).await.unwrap();
    let delivery = Delivery { id: DeliveryId(1), body: body.clone(), headers: BTreeMap::new(), attempt: 1 };
    let task = {
        let o = o.clone();
        tokio::spawn(async move { o.process(&delivery).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "parsed while the budget was spent");
    assert!(index.calls().is_empty());
    drop(held);
    let outcome =
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("parsed once memory is free").unwrap();
    assert!(matches!(outcome, Outcome::Stored { .. }), "{outcome:?}");
    // It asked for the body and the image decoded out of it, and gave it all back.
    assert_eq!(encoder.asked.lock().unwrap().first(), Some(&(body.len() * 2)));
    assert_eq!(memory.available_permits(), 8);
}
