//! The worker's health port (and the API, same listener) under a flood of half-sent
//! requests: 1,100 connections that send part of a request's headers and then nothing.
//! Before the listener evicted idle connections, such a flood used every slot until the
//! header deadline and `/healthz` waited behind it in the backlog (~40 s at 128 slots and
//! a 5 s deadline): the kubelet would have restarted a healthy worker.

use facerec::http::Health;
use facerec::metrics::{Gauges, Metrics};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct Healthy;

impl Health for Healthy {
    fn not_ready(&self) -> Option<String> {
        None
    }
    fn gauges(&self) -> Gauges {
        Gauges::default()
    }
}

async fn probe(addr: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_do_not_starve_the_health_probe() {
    let shutdown = CancellationToken::new();
    let addr = facerec::http::serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(Healthy),
        Arc::new(Metrics::default()),
        shutdown.clone(),
    )
    .await
    .expect("bind");
    let before = open_fds();

    let mut attackers = Vec::new();
    for _ in 0..1_100 {
        let mut s = TcpStream::connect(addr).await.expect("attacker connects");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("partial headers");
        attackers.push(s);
    }
    // Let the server accept what it will.
    tokio::time::sleep(Duration::from_millis(300)).await;

    for round in 0..5 {
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(2), probe(addr))
            .await
            .unwrap_or_else(|_| panic!("probe {round}: /healthz did not answer within 2 s under the flood"));
        assert!(answer.starts_with("HTTP/1.1 200"), "probe {round}: {answer}");
        assert!(answer.ends_with("ok\n"), "probe {round}: {answer}");
        assert!(started.elapsed() < Duration::from_secs(1), "probe {round} took {:?}", started.elapsed());
    }

    // The server holds at most its 128 slots: the rest of the fds are the attackers' own.
    let server_side = open_fds().saturating_sub(before).saturating_sub(attackers.len());
    assert!(server_side <= 128 + 8, "the server holds {server_side} connections, over its cap of 128");
    drop(attackers);
    shutdown.cancel();
}
