//! Ack only after a durable write; requeue on transient failures (bounded); dead-letter
//! what can never succeed, with its reason.

use facerec::hash::ImageHash;
use facerec::orchestrator::{Orchestrator, Outcome, Settings};
use facerec::ports::{Delivery, DeliveryId, EncodeError, FaceIndex, IndexError, Settlement};
use facerec_fakes::Method;
use facerec_fakes::mocks::{MockEncoder, MockIndex, MockLogs};
use facerec_fakes::testkit::fixtures::hash_of;
use facerec_fakes::testkit::{Harness, message};
use std::collections::BTreeMap;

#[tokio::test]
async fn every_ack_follows_the_durable_write_of_its_image() {
    let h = Harness::new();
    h.push("obama.jpg", "a");
    h.push("biden.jpg", "b");
    h.push("obama.jpg", "c"); // known by then or racing: either way acked after a write
    h.run().await;
    let events = h.timeline.events();
    let acks: Vec<usize> =
        events.iter().enumerate().filter(|(_, e)| e.starts_with("settle Ack")).map(|(i, _)| i).collect();
    let writes: Vec<usize> = events.iter().enumerate().filter(|(_, e)| e.contains(" ok ")).map(|(i, _)| i).collect();
    assert_eq!(acks.len(), 3, "{events:#?}");
    // Each ack is preceded by at least as many successful writes as acks so far.
    for (n, ack) in acks.iter().enumerate() {
        assert!(writes.iter().filter(|w| *w < ack).count() > n, "ack #{n} before its write: {events:#?}");
    }
}

#[tokio::test]
async fn an_index_failure_requeues_then_succeeds_and_is_never_acked_early() {
    let mut h = Harness::new();
    h.options.concurrency = 1;
    h.push("obama.jpg", "a");
    h.index.fail_next(Method::AddImage, [IndexError::Unavailable("connection reset".into())]);
    h.run().await;

    let settlements: Vec<Settlement> = h.source.settlements().into_iter().map(|(_, s)| s).collect();
    assert!(matches!(&settlements[0], Settlement::Requeue { reason } if reason.contains("connection reset")));
    assert_eq!(settlements[1], Settlement::Ack);
    assert_eq!(settlements.len(), 2);
    assert!(h.index.is_known(&hash_of("obama.jpg")).await.unwrap());
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_with_their_reason_and_the_rest_goes_on() {
    let h = Harness::new();
    let not_an_image = ImageHash::parse("not-an-image").unwrap();
    h.encoder.set(&not_an_image, Err(EncodeError::NotAnImage("unknown format (first bytes 68 65 6c 6c)".into())));
    let too_big = ImageHash::parse("too-big").unwrap();
    h.encoder.set(&too_big, Err(EncodeError::OverLimit("image is 60000x60000 pixels".into())));
    h.source.push(b"{not json".to_vec());
    h.source.push(br#"{"hash": "x", "image": "aGk="}"#.to_vec());
    h.source.push(br#"{"hash": "x", "name": "n", "image": 12}"#.to_vec());
    h.source.push(message(not_an_image.as_str(), "hello.txt"));
    h.source.push(message(too_big.as_str(), "bomb.png"));
    h.push("obama.jpg", "fine.jpg");
    h.run().await;

    let reasons: Vec<String> = h.source.dead_letters().into_iter().map(|(_, r)| r).collect();
    assert_eq!(reasons.len(), 5, "{reasons:#?}");
    assert!(reasons[0].starts_with("bad message: body is not valid JSON"), "{}", reasons[0]);
    assert!(reasons.iter().any(|r| r == "bad message: JSON body has no `name` field"));
    assert!(reasons.iter().any(|r| r.contains("`image` must be a base64 string")));
    assert!(reasons.iter().any(|r| r.starts_with("not a decodable image: unknown format")));
    assert!(reasons.iter().any(|r| r.starts_with("image over limit")));
    assert_eq!(h.source.acked(), 1);
    assert!(!h.index.is_known(&not_an_image).await.unwrap());
}

#[tokio::test]
async fn a_transient_encoder_failure_requeues() {
    let mut h = Harness::new();
    h.options.concurrency = 1;
    let flaky = ImageHash::parse("flaky").unwrap();
    h.encoder.set(&flaky, Err(EncodeError::Unavailable("encoder restarting".into())));
    h.source.push(message(flaky.as_str(), "x.jpg"));
    h.settings.max_attempts = 2;
    h.run().await;
    let s: Vec<Settlement> = h.source.settlements().into_iter().map(|(_, s)| s).collect();
    assert!(matches!(&s[0], Settlement::Requeue { reason } if reason.contains("encoder restarting")));
    assert!(matches!(&s[1], Settlement::DeadLetter { .. }));
}

#[tokio::test]
async fn a_lost_ack_redelivers_and_reprocessing_gives_the_same_state() {
    let h = Harness::new();
    h.push("obama.jpg", "a.jpg");
    h.push("obama2.jpg", "b.jpg");
    // The first settle is lost (connection dropped after the write): the broker redelivers.
    h.source.fail_next_settles(1);
    h.run().await;
    assert_eq!(h.source.acked(), 2);
    let a = h.index.image(&hash_of("obama.jpg")).await.unwrap().unwrap();
    assert_eq!(a.names.len(), 1);
    assert_eq!(a.matches.len(), 1);
    assert_eq!(h.matches_of(&hash_of("obama2.jpg")).await.len(), 1);
}

fn delivery(body: Vec<u8>, attempt: u32) -> Delivery {
    Delivery { id: DeliveryId(1), body, headers: BTreeMap::new(), attempt }
}

#[tokio::test]
async fn a_rejected_write_dead_letters_and_a_known_hash_is_never_re_added() {
    // Scripted with mockall: the exact calls matter here, not the state.
    let hash = hash_of("obama.jpg");
    let mut index = MockIndex::new();
    index.expect_is_known().times(1).returning(|_| Ok(false));
    index
        .expect_add_image()
        .times(1)
        .returning(|_, _| Err(IndexError::Rejected("WRONGTYPE db3 key holds a string".into())));
    let mut encoder = MockEncoder::new();
    encoder.expect_encode().times(1).returning(|_, _| Ok(facerec_fakes::testkit::fixtures::encoded("obama.jpg")));
    encoder.expect_fingerprint().return_const("mock".to_owned());
    let mut logs = MockLogs::new();
    logs.expect_publish().returning(|_, _| ());
    let o = Orchestrator::new(encoder, index, logs, Settings::for_host("h"));
    let outcome = o.process(&delivery(message(hash.as_str(), "a"), 1)).await;
    assert!(matches!(outcome, Outcome::Rejected { reason, .. } if reason.contains("WRONGTYPE")));

    let mut index = MockIndex::new();
    index.expect_is_known().returning(|_| Ok(true));
    index.expect_add_name().times(1).returning(|_, _| Ok(()));
    index.expect_add_image().times(0);
    let mut encoder = MockEncoder::new();
    encoder.expect_encode().times(0);
    let mut logs = MockLogs::new();
    logs.expect_publish().returning(|_, _| ());
    let o = Orchestrator::new(encoder, index, logs, Settings::for_host("h"));
    let outcome = o.process(&delivery(message(hash.as_str(), "b"), 1)).await;
    assert!(matches!(outcome, Outcome::NameAdded { .. }));
}
