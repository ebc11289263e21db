//! Workers SIGKILLed at random points, twenty times over one batch.

use crate::FACEREC;
use crate::SERIAL;
use facerec_fakes::testkit::servers::{cleanup, dump, publish, queue_len, stored};
use facerec_fakes::testkit::{Batch, Names, Worker, wait_until};
use std::time::Duration;

#[tokio::test]
async fn twenty_sigkills_across_two_hundred_messages_lose_and_duplicate_nothing() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("drill-kill");
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(200, 12, 50);
    publish(&names, &batch.messages()).await;
    let recording = batch.save(dir.path()).display().to_string();
    let args = ["--encodings", &recording, "--recorded-delay-ms", "80", "--http-addr", "off", "--concurrency", "2"];
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut progress = Vec::new();
    for _ in 0..20 {
        let before = stored(&names).await;
        let worker = Worker::spawn(FACEREC, &names, &args, dir.path());
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Somewhere between start-up and well into the batch.
        tokio::time::sleep(Duration::from_millis(150 + rng % 500)).await;
        worker.kill9();
        progress.push(stored(&names).await - before);
    }
    let killed_mid_batch = progress.iter().filter(|p| **p > 0).count();
    assert!(killed_mid_batch >= 10, "most kills must land while images are being processed: {progress:?}");
    let worker = Worker::spawn(FACEREC, &names, &args, dir.path());
    wait_until("all 200 stored", Duration::from_secs(120), || async { stored(&names).await == 200 }).await;
    wait_until("queue drained", Duration::from_secs(30), || async { queue_len(&names.queue).await == 0 }).await;
    assert!(worker.terminate(Duration::from_secs(20)).success());
    assert_eq!(dump(&names.prefix).await, batch.expected(0.6), "databases differ from a clean run");
    assert_eq!(queue_len(&names.queue).await, 0, "nothing left in the queue or unacked");
    assert_eq!(queue_len(&names.dead).await, 0, "nothing dead-lettered");
    eprintln!("images stored per worker life before its SIGKILL: {progress:?}");
    cleanup(&names).await;
}
