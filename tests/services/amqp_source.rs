//! The RabbitMQ source in-process: ack, requeue with a counted attempt, dead letters with
//! their reason, redelivery after a lost connection; the same on a quorum queue. The frame
//! size each kind of connection negotiates.

use facerec::adapters::amqp::source::AmqpSource;
use facerec::adapters::amqp::{
    ATTEMPT_HEADER, Frames, PUBLISHER_FRAME_MAX, QueueType, REASON_HEADER, connect_any, text_headers,
};
use facerec::ports::{MessageSource, Settlement};
use facerec_fakes::testkit::servers::{cleanup, publish, publish_undeclared, queue_len, rabbit};
use facerec_fakes::testkit::{Names, wait_until};
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use std::time::Duration;

async fn next(source: &AmqpSource) -> facerec::ports::Delivery {
    tokio::time::timeout(Duration::from_secs(20), source.next()).await.expect("a delivery").unwrap().unwrap()
}

#[tokio::test]
async fn requeue_counts_attempts_and_dead_letters_keep_body_and_reason() {
    let names = Names::new("source");
    publish(&names, &[b"first".to_vec(), b"second".to_vec()]).await;
    let source = AmqpSource::start(names.amqp_settings(), 5);

    let d = next(&source).await;
    assert_eq!((d.body.as_slice(), d.attempt), (b"first".as_slice(), 1));
    source.settle(d.id, Settlement::Requeue { reason: "redis down".into() }).await.unwrap();
    let d = next(&source).await;
    assert_eq!((d.body.as_slice(), d.attempt), (b"second".as_slice(), 1));
    source.settle(d.id, Settlement::Ack).await.unwrap();
    let d = next(&source).await;
    assert_eq!((d.body.as_slice(), d.attempt), (b"first".as_slice(), 2), "requeued with its attempt raised");
    source.settle(d.id, Settlement::DeadLetter { reason: "not an image: unknown format".into() }).await.unwrap();
    source.close().await;

    assert_eq!(queue_len(&names.queue).await, 0);
    let conn = rabbit().await;
    let ch = conn.create_channel().await.unwrap();
    let dead =
        ch.basic_get(names.dead.as_str().into(), BasicGetOptions::default()).await.unwrap().expect("a dead letter");
    assert_eq!(dead.delivery.data, b"first");
    let headers = text_headers(dead.delivery.properties.headers().as_ref());
    assert_eq!(headers.get(REASON_HEADER).map(String::as_str), Some("not an image: unknown format"));
    assert_eq!(headers.get(ATTEMPT_HEADER).map(String::as_str), Some("2"));
    assert_eq!(*dead.delivery.properties.delivery_mode(), Some(2), "dead letters are persistent");
    dead.delivery.acker.ack(BasicAckOptions::default()).await.unwrap();
    let _ = conn.close(200, "bye".into()).await;
    cleanup(&names).await;
}

#[tokio::test]
async fn a_message_left_unsettled_by_a_dead_worker_comes_back_counted() {
    let names = Names::new("redeliver");
    publish(&names, &[b"poison".to_vec()]).await;
    {
        // A worker takes it and dies: its connection closes without a settlement.
        let source = AmqpSource::start(names.amqp_settings(), 3);
        let d = next(&source).await;
        assert_eq!(d.attempt, 1);
        source.close().await;
    }
    let source = AmqpSource::start(names.amqp_settings(), 3);
    let d = next(&source).await;
    assert_eq!((d.body.as_slice(), d.attempt), (b"poison".as_slice(), 2));
    source.close().await;
    // Twice more: past max_attempts it is handed over (for dead-lettering), not re-published.
    let source = AmqpSource::start(names.amqp_settings(), 3);
    let d = next(&source).await;
    assert_eq!(d.attempt, 3);
    source.close().await;
    let source = AmqpSource::start(names.amqp_settings(), 3);
    let d = next(&source).await;
    assert_eq!(d.attempt, 4, "beyond the limit: the orchestrator dead-letters it");
    source.settle(d.id, Settlement::DeadLetter { reason: "gave up".into() }).await.unwrap();
    source.close().await;
    wait_until("dead letter stored", Duration::from_secs(5), || async { queue_len(&names.dead).await == 1 }).await;
    cleanup(&names).await;
}

#[tokio::test]
async fn prefetched_messages_never_taken_are_returned_uncounted_on_close() {
    let names = Names::new("prefetch");
    publish(&names, &[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]).await;
    let mut settings = names.amqp_settings();
    settings.prefetch = 3;
    let source = AmqpSource::start(settings, 5);
    let d = next(&source).await;
    source.settle(d.id, Settlement::Ack).await.unwrap();
    // Let the broker push the other two into the buffer, then stop gracefully.
    tokio::time::sleep(Duration::from_millis(300)).await;
    source.close().await;
    let source = AmqpSource::start(names.amqp_settings(), 5);
    for _ in 0..2 {
        let d = next(&source).await;
        assert_eq!(d.attempt, 1, "a graceful stop is not a failed attempt");
        source.settle(d.id, Settlement::Ack).await.unwrap();
    }
    source.close().await;
    cleanup(&names).await;
}

#[tokio::test]
async fn a_quorum_work_queue_counts_by_itself_and_dead_letters_into_a_quorum_queue() {
    let names = Names::new("quorum");
    let mut settings = names.amqp_settings();
    settings.queue_type = QueueType::Quorum;
    let conn = rabbit().await;
    facerec::adapters::amqp::topology::declare_work(&conn, &settings).await.unwrap();
    publish_undeclared(&names, vec![(b"poison".to_vec(), Default::default())]).await;

    let source = AmqpSource::start(settings, 3);
    let d = next(&source).await;
    assert_eq!(d.attempt, 1);
    source.settle(d.id, Settlement::Requeue { reason: "redis down".into() }).await.unwrap();
    let d = next(&source).await;
    assert_eq!((d.body.as_slice(), d.attempt), (b"poison".as_slice(), 2), "the broker's x-delivery-count");
    source.settle(d.id, Settlement::DeadLetter { reason: "gave up".into() }).await.unwrap();
    source.close().await;
    wait_until("dead letter stored", Duration::from_secs(5), || async { queue_len(&names.dead).await == 1 }).await;

    // Both queues are quorum queues: re-declaring them as such is accepted (a classic
    // queue refuses an x-queue-type it was not declared with). A classic dead-letter queue
    // lives on one node of a cluster, and with that node down dead-lettering, and so all
    // consuming, would stop.
    for queue in [&names.queue, &names.dead] {
        let ch = conn.create_channel().await.unwrap();
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        if queue == &names.queue {
            args.insert("x-delivery-limit".into(), AMQPValue::LongInt(names.amqp_settings().delivery_limit as i32));
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
            args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(names.dead.as_str().into()));
        }
        let declared = ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), args).await;
        assert!(declared.is_ok(), "{queue} is not a quorum queue: {declared:?}");
    }
    let _ = conn.close(200, "bye".into()).await;
    cleanup(&names).await;
}

#[tokio::test]
async fn publishing_connections_ask_for_small_frames_the_consumer_keeps_the_brokers_and_the_url_wins() {
    let names = Names::new("frames");
    let settings = names.amqp_settings();
    let frame_max = |frames: Frames, settings: facerec::adapters::amqp::AmqpSettings| async move {
        let conn = connect_any(&settings, "facerec-test frames", frames, Duration::from_secs(10)).await.unwrap();
        let negotiated = conn.configuration().frame_max();
        let _ = conn.close(200, "bye".into()).await;
        negotiated
    };
    // lapin keeps 32 frames of buffer each way: 1 MiB per publishing connection, not 8.
    assert_eq!(frame_max(Frames::Small, settings.clone()).await, PUBLISHER_FRAME_MAX);
    assert_eq!(frame_max(Frames::Broker, settings.clone()).await, 128 << 10, "RabbitMQ's default frame_max");
    let mut chosen = settings.clone();
    chosen.url = chosen.url.with_query_default("frame_max", "8192");
    assert_eq!(frame_max(Frames::Small, chosen).await, 8192);
}
