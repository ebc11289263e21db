//! `facerec api` with RabbitMQ stopped (`rabbitmqctl stop_app` on the shared broker):
//! submissions get 503 + Retry-After within seconds and `/readyz` 503; nothing is reported
//! accepted that the broker does not hold; after `start_app` submissions succeed again
//! without restarting the API.

use crate::FACEREC;
use crate::SERIAL;
use facerec_fakes::testkit::servers::{amqp_url, cleanup, queue_len, redis_url};
use facerec_fakes::testkit::{Names, wait_until};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Starts the broker again however the test ends (a failed assert unwinds through it).
struct StartAppOnDrop;

impl Drop for StartAppOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").status();
        let _ = Command::new("rabbitmqctl").arg("await_startup").status();
    }
}

/// The API process, killed on drop.
struct ApiProcess(Child);

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
async fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let call = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.ok()?;
        s.write_all(body).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        Some((status, text))
    };
    tokio::time::timeout(Duration::from_secs(30), call).await.ok().flatten().unwrap_or((0, String::new()))
}

fn png(tag: &str) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend_from_slice(tag.as_bytes());
    b
}

fn rabbitmqctl(action: &str) {
    let status = Command::new("rabbitmqctl").arg(action).status().expect("rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {action}");
}

#[tokio::test]
async fn with_rabbitmq_stopped_submissions_get_503_fast_and_succeed_after_it_returns() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("drill-api");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let api = ApiProcess(
        Command::new(FACEREC)
            .arg("api")
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(names.worker_args())
            .env("RABBITMQ_URL", amqp_url())
            .env("REDIS_URL", redis_url())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("starting facerec api"),
    );
    wait_until("ready", Duration::from_secs(30), || async { http(port, "GET", "/readyz", b"").await.0 == 200 }).await;
    assert_eq!(http(port, "POST", "/scan/image/before.png", &png("before")).await.0, 200);

    let restart = StartAppOnDrop;
    rabbitmqctl("stop_app");
    let started = Instant::now();
    let (status, reply) = http(port, "POST", "/scan/image/down.png", &png("down")).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{reply}");
    assert!(reply.to_ascii_lowercase().contains("retry-after:"), "{reply}");
    assert!(took < Duration::from_secs(6), "503 took {took:?}");
    eprintln!("503 with RabbitMQ stopped after {took:?}");
    wait_until("/readyz 503", Duration::from_secs(10), || async { http(port, "GET", "/readyz", b"").await.0 == 503 })
        .await;
    assert_eq!(http(port, "POST", "/api/v1/images?name=down2.png", &png("down2")).await.0, 503);

    drop(restart); // start_app + await_startup
    let back = Instant::now();
    wait_until("submissions accepted again", Duration::from_secs(60), || async {
        http(port, "POST", "/scan/image/after.png", &png("after")).await.0 == 200
    })
    .await;
    eprintln!("accepted again {:?} after start_app", back.elapsed());
    wait_until("/readyz 200", Duration::from_secs(10), || async { http(port, "GET", "/readyz", b"").await.0 == 200 })
        .await;
    // Exactly the two accepted images are on the queue (no worker runs): none of the 503s.
    assert_eq!(queue_len(&names.queue).await, 2);
    drop(api);
    cleanup(&names).await;
}
