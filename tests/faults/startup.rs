//! Start-up: configuration mistakes end the worker at once with status 2 and one line
//! naming the setting; an unreachable server is waited for; no password is ever shown,
//! in logs at `RUST_LOG=trace`, on stdout or on `/metrics`.

use crate::own_redis::OwnRedis;
use crate::{FACEREC, SERIAL};
use facerec_fakes::testkit::servers::{amqp_url, cleanup, count_keys, publish};
use facerec_fakes::testkit::{Batch, Names, Worker, wait_until};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `facerec worker ARGS` with a clean environment and waits for it to exit.
fn worker_exit(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(FACEREC)
        .arg("worker")
        .args(args)
        .env_clear()
        .env("FACEREC_HTTP_ADDR", "off")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .expect("running facerec");
    (output, started.elapsed())
}

#[tokio::test]
async fn configuration_mistakes_exit_2_within_two_seconds_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let mut cases = vec![
        (vec!["--redis-url", "redis://bad host:x"], "REDIS_URL"),
        (vec!["--redis-url", "http://redis:6379"], "REDIS_URL"),
        (vec!["--rabbitmq-url", "amqp://guest:guest@rabbit:notaport/"], "RABBITMQ_URL"),
        (vec!["--rabbitmq-password-file", missing], "RABBITMQ_PASSWORD_FILE"),
        (vec!["--redis-password-file", missing], "REDIS_PASSWORD_FILE"),
        (vec!["--encodings", missing], "FACEREC_ENCODINGS"),
        (vec!["--http-addr", "nowhere"], "FACEREC_HTTP_ADDR"),
    ];
    if cfg!(feature = "dlib") {
        cases.push((vec!["--models", missing], "FACEREC_MODELS"));
    }
    for (args, setting) in cases {
        let (out, took) = worker_exit(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(took < Duration::from_secs(2), "{args:?} took {took:?}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line expected, got {stderr}");
        assert!(lines[0].contains(setting), "{args:?}: {:?} does not name {setting}", lines[0]);
    }
}

#[tokio::test]
async fn a_stopped_redis_is_waited_for_and_the_worker_proceeds_when_it_returns() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("startup-wait");
    let dir = tempfile::tempdir().unwrap();
    let mut redis = OwnRedis::start();
    redis.stop();
    let batch = Batch::new(10, 3, 7);
    publish(&names, &batch.messages()).await;
    let recording = batch.save(dir.path()).display().to_string();
    let url = redis.url();
    let mut worker = Worker::spawn(
        FACEREC,
        &names,
        &["--encodings", &recording, "--http-addr", "off", "--redis-url", &url],
        dir.path(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(worker.is_running(), "the worker must wait for Redis, not exit: {}", worker.logs());
    assert!(worker.logs().contains("not available yet; retrying"), "{}", worker.logs());
    redis.restart();
    wait_until("all 10 stored", Duration::from_secs(60), || async { count_keys(&url, 2, &names.prefix).await == 10 })
        .await;
    assert!(worker.terminate(Duration::from_secs(20)).success());
    cleanup(&names).await;
}

#[tokio::test]
async fn passwords_never_appear_at_trace_level_on_stdout_or_metrics() {
    let _serial = SERIAL.lock().await;
    let names = Names::new("secrets");
    let dir = tempfile::tempdir().unwrap();
    // Redis takes its password (read from a file); RabbitMQ refuses the one in the URL, so
    // the worker connects, loads, then retries RabbitMQ and logs each failure.
    let redis = OwnRedis::start_with(&["--requirepass", "R/d#Secret2?@x"]);
    let secret_file = dir.path().join("redis-password");
    std::fs::write(&secret_file, "R/d#Secret2?@x\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let amqp = amqp_url().replacen("guest:guest@", "guest:Pa%2Fss%23Secret1%3F@", 1);
    assert!(amqp.contains("Secret1"), "RABBITMQ_URL must carry the test password: {amqp}");
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(FACEREC)
        .arg("worker")
        .args(names.worker_args())
        .args(["--encodings", &Batch::new(1, 1, 1).save(dir.path()).display().to_string(), "--http-addr", &addr])
        .args(["--redis-host", "127.0.0.1", "--redis-port", &redis.port.to_string()])
        .arg("--redis-password-file")
        .arg(&secret_file)
        .env("RABBITMQ_URL", &amqp)
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let metrics = reqwest_like_get(&addr, "/metrics");
    let ready = reqwest_like_get(&addr, "/readyz");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let all =
        format!("{}{}{metrics}{ready}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.lines().count() > 50, "trace logging should be busy: {all}");
    assert!(all.contains("cannot consume from RabbitMQ; retrying"), "the worker should be retrying RabbitMQ: {all}");
    for secret in ["Secret1", "Secret2", "Pa/ss", "Pa%2Fss", "R/d#"] {
        let at = all.find(secret);
        assert!(
            at.is_none(),
            "{secret:?} leaked: ...{}...",
            &all[at.unwrap().saturating_sub(200)..][..400.min(all.len() - at.unwrap().saturating_sub(200))]
        );
    }
    cleanup(&names).await;
}

/// A plain HTTP/1.0 GET on loopback.
fn reqwest_like_get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body
}
