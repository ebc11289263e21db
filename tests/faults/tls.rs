//! `rediss://`: the worker talks to a TLS-only Redis whose certificate is signed by a
//! private CA given through SSL_CERT_FILE, stores an image, and refuses a server it cannot
//! verify.

use crate::FACEREC;
use crate::SERIAL;
use facerec_fakes::testkit::servers::{amqp_url, cleanup, publish};
use facerec_fakes::testkit::{Batch, Names, wait_until};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl").args(args).current_dir(dir).stderr(Stdio::null()).status().expect("openssl");
    assert!(status.success(), "openssl {args:?}");
}

fn redis_cli_tls(dir: &Path, port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert", "ca.pem", "-p", &port.to_string()])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_worker_stores_through_tls_and_refuses_an_unverified_server() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=facerec test CA",
        ],
    );
    openssl(
        d,
        &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost"],
    );
    std::fs::write(d.join("ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args([
            "--tls-cert-file",
            "srv.pem",
            "--tls-key-file",
            "srv.key",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            "no",
        ])
        .current_dir(d)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server with TLS");
    wait_until("TLS redis", Duration::from_secs(10), || async { redis_cli_tls(d, port, &["ping"]) == "PONG" }).await;

    let names = Names::new("tls");
    let batch = Batch::new(1, 1, 99);
    publish(&names, &batch.messages()).await;
    let recording = batch.save(d).display().to_string();
    let url = format!("rediss://localhost:{port}");
    let spawn = |cert: &str| {
        Command::new(FACEREC)
            .arg("worker")
            .args(names.worker_args())
            .args(["--encodings", &recording, "--http-addr", "off", "--redis-url", &url, "--redis-timeout", "2"])
            .env("RABBITMQ_URL", amqp_url())
            .env("SSL_CERT_FILE", d.join(cert))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join(format!("{cert}.log"))).unwrap())
            .spawn()
            .unwrap()
    };
    // Without the CA the server cannot be verified: the worker waits, it does not store.
    std::fs::write(d.join("other.pem"), std::fs::read(d.join("srv.pem")).unwrap()).unwrap();
    let mut untrusting = spawn("other.pem");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = untrusting.kill();
    let _ = untrusting.wait();
    let log = std::fs::read_to_string(d.join("other.pem.log")).unwrap();
    assert!(log.contains("not available yet"), "{log}");

    let mut worker = spawn("ca.pem");
    let key = format!("{}{}", names.prefix, batch.recording.images[0].hash);
    wait_until("image stored over TLS", Duration::from_secs(30), || async {
        redis_cli_tls(d, port, &["-n", "2", "exists", &key]) == "1"
    })
    .await;
    let _ = worker.kill();
    let _ = worker.wait();
    let _ = server.kill();
    let _ = server.wait();
    cleanup(&names).await;
}
