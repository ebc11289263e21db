//! A Python client using only pika, redis-py and numpy (tests/interop/interop.py) publishes
//! the sample images every way the protocol allows and reads the results the documented
//! way, against a real dlib worker. Needs features `dlib` and `services` and FACEREC_PYTHON.

use crate::FACEREC;
use facerec_fakes::testkit::fixtures::sample_images_dir;
use facerec_fakes::testkit::servers::{cleanup, redis_url};
use facerec_fakes::testkit::{Names, Worker};
use std::time::Duration;

#[tokio::test]
async fn a_pika_and_redis_py_client_publishes_and_reads_results_the_documented_way() {
    let python = std::env::var("FACEREC_PYTHON").expect("FACEREC_PYTHON (scripts/test.sh sets it)");
    let images = sample_images_dir();
    let names = Names::new("interop");
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::spawn(FACEREC, &names, &["--http-addr", "off"], dir.path());
    // Let it declare the queue before the client publishes (mandatory publishing).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !worker.logs().contains("consuming from RabbitMQ") {
        assert!(std::time::Instant::now() < deadline, "worker did not start: {}", worker.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let port = redis_url().rsplit(':').next().unwrap().trim_end_matches('/').to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/interop.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args(["--exchange", &names.exchange, "--routing-key", &names.queue, "--key-prefix", &names.prefix])
        .arg("--images")
        .arg(&images)
        .args(["--redis-port", &port, "--timeout", "180"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "interop client failed:\n{report}\n{}\nworker:\n{}",
        String::from_utf8_lossy(&out.stderr),
        worker.logs()
    );
    assert!(!report.contains("FAIL"), "{report}");
    drop(worker);
    cleanup(&names).await;
}
