//! `facerec serve`: the composition (`app::serve`) on 127.0.0.1:0 over real sockets, and
//! the binary itself. Images are stand-in bytes (they sniff as PNG) mapped, in a recording
//! written per test, to the faces `facerec record` saved from the sample images
//! (fixtures/encodings): no dlib, no sample images needed.

use facerec::adapters::memory_queue::QueueLimits;
use facerec::adapters::recorded_encoder::{RecordedImage, Recording};
use facerec::api::ApiSettings;
use facerec::api::fetch::FetchPolicy;
use facerec::api::server::ServerLimits;
use facerec::app::EncoderChoice;
use facerec::app::api::FrontEnd;
use facerec::app::serve::{ScanEvents, Serve, ServeConfig};
use facerec::hash::ImageHash;
use facerec::orchestrator::Settings;
use facerec::runner::{RunOptions, RunStats};
use facerec_fakes::testkit::fixtures::recording;
use facerec_fakes::testkit::harness::HOST;
use facerec_fakes::testkit::wait::wait_until;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Bytes that sniff as a PNG, distinct per tag.
fn image(tag: &str) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend_from_slice(tag.as_bytes());
    b
}

/// Stand-in images and the sample whose faces each one has.
/// `photo` is never stored: it is the photo `POST /api/v1/forget` is given.
const STANDS_IN: [(&str, &str); 4] =
    [("obama", "obama.jpg"), ("obama2", "obama2.jpg"), ("biden", "biden.jpg"), ("photo", "obama3.jpg")];

fn hash(tag: &str) -> ImageHash {
    ImageHash::of_bytes(&image(tag))
}

/// A recording in `dir` that gives each stand-in image its sample's faces.
fn write_recording(dir: &Path) -> PathBuf {
    let fixtures = recording();
    let images = STANDS_IN
        .iter()
        .map(|(tag, sample)| RecordedImage {
            hash: hash(tag),
            name: (*tag).into(),
            ..fixtures.by_name(sample).unwrap().clone()
        })
        .collect();
    let path = dir.join("recording.json");
    Recording { images, ..fixtures.clone() }.save(&path).unwrap();
    path
}

/// The smallest distance between a face of one sample and a face of the other.
fn recorded_distance(a: &str, b: &str) -> f64 {
    let (a, b) = (recording().by_name(a).unwrap(), recording().by_name(b).unwrap());
    a.faces
        .iter()
        .flat_map(|x| b.faces.iter().map(move |y| x.encoding.distance(&y.encoding)))
        .fold(f64::INFINITY, f64::min)
}

fn config(dir: &Path, index: Option<PathBuf>, delay: Duration) -> ServeConfig {
    ServeConfig {
        front: FrontEnd {
            addr: "127.0.0.1:0".parse().unwrap(),
            api: ApiSettings { hostname: HOST.into(), ..ApiSettings::default() },
            fetch: FetchPolicy::default(),
            server: ServerLimits::default(),
        },
        encoder: EncoderChoice::Recorded {
            file: write_recording(dir),
            delay,
            thumbnails: facerec::thumbnail::ThumbnailSettings::default(),
        },
        index,
        pipeline: Settings::for_host(HOST),
        run: RunOptions { concurrency: 2, retry_base: Duration::from_millis(10), ..RunOptions::default() },
        queue: QueueLimits::default(),
        max_image_bytes: 1000,
    }
}

/// A serve app answering on a real socket.
struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<RunStats>,
}

impl Running {
    async fn start(config: ServeConfig) -> Self {
        let shutdown = CancellationToken::new();
        let serve = Serve::start(config, facerec::runner::ignore(), shutdown.clone()).await.unwrap();
        Self::run(serve, shutdown)
    }

    fn run(serve: Serve, shutdown: CancellationToken) -> Self {
        let addr = serve.address();
        let task = tokio::spawn(async move { serve.run().await.unwrap() });
        Self { addr, shutdown, task }
    }

    /// Stops it as a signal would, and waits until it has.
    async fn stop(self) -> RunStats {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task).await.expect("serve stops").unwrap()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        http(self.addr, "GET", path, &[]).await
    }

    async fn post(&self, path: &str, body: &[u8]) -> (u16, Value) {
        http(self.addr, "POST", path, body).await
    }

    async fn status_of(&self, hash: &ImageHash) -> Value {
        let (code, view) = self.get(&format!("/api/v1/images/{hash}")).await;
        assert_eq!(code, 200, "{view}");
        view
    }

    async fn wait_for_status(&self, hash: &ImageHash, status: &str) -> Value {
        wait_until(&format!("{hash} {status}"), Duration::from_secs(10), || async {
            self.status_of(hash).await["status"] == status
        })
        .await;
        self.status_of(hash).await
    }
}

/// One HTTP/1.1 request, `Connection: close`; the status and the body as JSON.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP reply: {text}"));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    (code, serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())))
}

#[tokio::test]
async fn posted_images_are_encoded_stored_and_matched_as_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::start(config(dir.path(), None, Duration::ZERO)).await;

    let (code, reply) = app.post("/api/v1/images?name=obama.png", &image("obama")).await;
    assert_eq!(
        (code, &reply),
        (202, &json!({"hash": hash("obama").as_str(), "name": "obama.png", "status": "queued"}))
    );
    let (code, reply) = app.post("/scan/image/obama2.png", &image("obama2")).await;
    assert_eq!((code, reply), (200, json!({"hash": hash("obama2").as_str()})));
    let (code, _) = app.post("/api/v1/images?name=biden.png", &image("biden")).await;
    assert_eq!(code, 202);

    for tag in ["obama", "obama2", "biden"] {
        let view = app.wait_for_status(&hash(tag), "done").await;
        assert_eq!(view["faces"], 1, "{view}");
    }
    let obama = app.status_of(&hash("obama")).await;
    assert_eq!(obama["names"], json!(["obama.png"]));
    assert_eq!(obama["fingerprint"], recording().fingerprint.as_str());

    // The course's route and /api/v1 agree, and with the recorded faces.
    assert_eq!(app.get(&format!("/match/{}", hash("obama"))).await, (200, json!(["obama2.png"])));
    let (code, matches) = app.get(&format!("/api/v1/images/{}/matches", hash("obama"))).await;
    assert_eq!(code, 200);
    let expected = recorded_distance("obama.jpg", "obama2.jpg");
    assert!(expected <= 0.6, "the samples are one person");
    assert_eq!(matches.as_array().unwrap().len(), 1, "{matches}");
    assert_eq!(matches[0]["hash"], hash("obama2").as_str());
    assert_eq!(matches[0]["names"], json!(["obama2.png"]));
    assert!((matches[0]["distance"].as_f64().unwrap() - expected).abs() < 1e-6, "{matches} vs {expected}");
    assert!(recorded_distance("obama.jpg", "biden.jpg") > 0.6);
    assert_eq!(app.get(&format!("/match/{}", hash("biden"))).await, (200, json!([])));
    assert_eq!(app.get(&format!("/api/v1/images/{}/matches", hash("biden"))).await, (200, json!([])));

    // The page is served by the same router.
    let (code, _) = app.get("/").await;
    assert_eq!(code, 200);
    let stats = app.stop().await;
    assert_eq!((stats.taken, stats.acked, stats.dead_lettered), (3, 3, 0));
}

#[tokio::test]
async fn serve_has_an_encoder_so_a_photo_erases_every_image_of_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::start(config(dir.path(), None, Duration::ZERO)).await;
    for tag in ["obama", "obama2", "biden"] {
        let (code, _) = app.post(&format!("/api/v1/images?name={tag}.png"), &image(tag)).await;
        assert_eq!(code, 202);
    }
    for tag in ["obama", "obama2", "biden"] {
        app.wait_for_status(&hash(tag), "done").await;
    }
    assert!(
        recorded_distance("obama3.jpg", "obama.jpg") <= 0.5 && recorded_distance("obama3.jpg", "obama2.jpg") <= 0.5
    );
    let (code, dry) = app.post("/api/v1/forget?dry_run=true", &image("photo")).await;
    assert_eq!(code, 200, "{dry}");
    assert_eq!((dry["matched"].as_array().unwrap().len(), &dry["erased"]), (2, &json!([])));
    assert_eq!(app.status_of(&hash("obama")).await["status"], "done");
    let (code, done) = app.post("/api/v1/forget", &image("photo")).await;
    assert_eq!(code, 200, "{done}");
    let mut erased: Vec<&str> =
        done["erased"].as_array().unwrap().iter().map(|e| e["hash"].as_str().unwrap()).collect();
    erased.sort_unstable();
    let mut expected = [hash("obama").to_string(), hash("obama2").to_string()];
    expected.sort_unstable();
    assert_eq!(erased, expected);
    for tag in ["obama", "obama2"] {
        assert_eq!(app.status_of(&hash(tag)).await["status"], "unknown", "{tag}");
    }
    assert_eq!(app.status_of(&hash("biden")).await["status"], "done");
    // Erased images submitted through this server are no longer said to be queued.
    let (code, _) = http(app.addr, "DELETE", &format!("/api/v1/images/{}", hash("biden")), &[]).await;
    assert_eq!(code, 200);
    assert_eq!(app.status_of(&hash("biden")).await["status"], "unknown");
    app.stop().await;
}

#[tokio::test]
async fn a_non_image_is_refused_with_415_and_a_dead_lettered_jpeg_says_failed_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::start(config(dir.path(), None, Duration::ZERO)).await;

    let (code, problem) = app.post("/api/v1/images?name=notes.txt", b"just some text").await;
    assert_eq!(code, 415, "{problem}");
    assert_eq!(problem["status"], 415);

    // Starts like a JPEG (so it is queued), is not one the encoder knows: dead-lettered.
    let corrupt = b"\xff\xd8\xff\xe0\0\x10JFIF\0 and then garbage".to_vec();
    let corrupt_hash = ImageHash::of_bytes(&corrupt);
    let (code, _) = app.post("/api/v1/images?name=broken.jpg", &corrupt).await;
    assert_eq!(code, 202);
    let view = app.wait_for_status(&corrupt_hash, "failed").await;
    let reason = view["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no recorded encoding"), "{view}");
    assert!(view["failed_at"].as_u64().is_some(), "{view}");
    assert_eq!(app.get(&format!("/api/v1/images/{}/matches", corrupt_hash)).await, (200, json!([])));
    let stats = app.stop().await;
    assert_eq!((stats.taken, stats.dead_lettered), (1, 1));
}

/// The folder scan's reports.
#[derive(Default)]
struct Told {
    listed: Mutex<Vec<usize>>,
    skipped: Mutex<Vec<(PathBuf, String)>>,
}

impl ScanEvents for Told {
    fn listed(&self, images: usize) {
        self.listed.lock().unwrap().push(images);
    }
    fn skipped(&self, path: &Path, reason: &str) {
        self.skipped.lock().unwrap().push((path.to_owned(), reason.to_owned()));
    }
}

/// A folder with the three stand-ins (one in a sub-folder, one without an image
/// extension), a text file and an image over the limit (1000 bytes in `config`).
fn photo_folder(root: &Path) -> PathBuf {
    let photos = root.join("photos");
    std::fs::create_dir_all(photos.join("2024")).unwrap();
    std::fs::write(photos.join("a-obama.png"), image("obama")).unwrap();
    std::fs::write(photos.join("2024/obama2.png"), image("obama2")).unwrap();
    std::fs::write(photos.join("biden"), image("biden")).unwrap();
    std::fs::write(photos.join("notes.txt"), "not a photo").unwrap();
    std::fs::write(photos.join("huge.png"), image(&"x".repeat(2000))).unwrap();
    photos
}

#[tokio::test]
async fn folders_are_scanned_and_processed_before_anything_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let shutdown = CancellationToken::new();
    let serve = Serve::start(config(dir.path(), None, Duration::ZERO), facerec::runner::ignore(), shutdown.clone())
        .await
        .unwrap();
    let told = Told::default();
    let scan = serve.scan_folders(std::slice::from_ref(&photos), &told).await.unwrap();
    assert_eq!((scan.queued, scan.skipped, scan.finished), (3, 2, true));
    assert_eq!(*told.listed.lock().unwrap(), [3]);
    let skipped = told.skipped.lock().unwrap().clone();
    let reason_for = |file: &str| skipped.iter().find(|(p, _)| p.ends_with(file)).map(|(_, r)| r.clone());
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(reason_for("notes.txt").unwrap().contains("not an image"), "{skipped:?}");
    assert!(reason_for("huge.png").unwrap().contains("over the image limit of 1000 bytes"), "{skipped:?}");

    // Everything is stored when the scan returns, before the server answers anything.
    let records = serve.index().records();
    assert_eq!(records.len(), 3);
    let app = Running::run(serve, shutdown);
    let obama = app.status_of(&hash("obama")).await;
    assert_eq!(obama["status"], "done");
    assert_eq!(obama["names"], json!([photos.join("a-obama.png").display().to_string()]));
    let (_, names) = app.get(&format!("/match/{}", hash("obama"))).await;
    assert_eq!(names, json!([photos.join("2024/obama2.png").display().to_string()]));
    app.stop().await;
}

#[tokio::test]
async fn the_index_file_keeps_what_was_stored_across_a_restart_and_in_flight_images_finish() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faces.idx");
    let app = Running::start(config(dir.path(), Some(file.clone()), Duration::from_millis(700))).await;
    app.post("/api/v1/images?name=obama.png", &image("obama")).await;
    app.post("/api/v1/images?name=obama2.png", &image("obama2")).await;
    // Both taken (concurrency 2), encoding for 700 ms: stop now, as a signal would.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = app.stop().await;
    assert_eq!((stats.taken, stats.acked), (2, 2), "in-flight images finish before serve returns");

    let app = Running::start(config(dir.path(), Some(file), Duration::ZERO)).await;
    let view = app.status_of(&hash("obama")).await;
    assert_eq!((view["status"].as_str(), view["faces"].as_u64()), (Some("done"), Some(1)), "{view}");
    assert_eq!(app.get(&format!("/match/{}", hash("obama"))).await, (200, json!(["obama2.png"])));
    app.stop().await;
}

/// The binary: `facerec serve DIR` prints its URL only once the folder is processed, then
/// stops on SIGTERM with status 0.
#[tokio::test]
async fn the_binary_prints_its_url_after_the_scan_and_stops_on_sigterm() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let recording = write_recording(dir.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_facerec"))
        .arg("serve")
        .arg(&photos)
        .args(["--addr", "127.0.0.1:0", "--max-image-bytes", "1000", "--recorded"])
        .arg(&recording)
        .env_remove("FACEREC_API_ADDR")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line.trim().strip_prefix("facerec is running at http://").unwrap_or_else(|| panic!("{line:?}"));
    let addr: SocketAddr = url.trim_end_matches('/').parse().unwrap();
    assert_ne!(addr.port(), 0, "the bound port is printed");
    // Asked at once: the folder's images are all stored already.
    for tag in ["obama", "obama2", "biden"] {
        let (_, view) = http(addr, "GET", &format!("/api/v1/images/{}", hash(tag)), &[]).await;
        assert_eq!(view["status"], "done", "{tag}: {view}");
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("notes.txt: not an image"), "{stderr}");
    assert!(stderr.contains("huge.png: 2"), "{stderr}");
    assert!(stderr.contains("scanned 3 images (2 skipped, 0 failed)"), "{stderr}");
    // Info lines on stderr: the worker's progress lines, through the stderr sink.
    assert!(stderr.contains(&format!("{} \"", hash("biden"))), "{stderr}");
}
