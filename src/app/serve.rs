//! `facerec serve`, assembled: the REST front-end, the page and a worker in one process,
//! with no servers. The router ([`super::api::router`]), the orchestrator and the runner
//! are production's; only the adapters differ: the in-process [`MemoryQueue`] (both the
//! API's [`ImageQueue`](crate::ports::ImageQueue) and the runner's
//! [`MessageSource`](crate::ports::MessageSource)), the embedded index (`--index FILE`
//! keeps it), the dlib pool or recorded encodings, and [`StderrLogs`].
//!
//! Lifecycle: [`Serve::start`] binds the address and starts the worker;
//! [`Serve::scan_folders`] queues the images of the folders given on the command line and
//! waits until they are processed; [`Serve::run`] serves until `shutdown`, lets the images
//! in flight finish, and reports what was still queued (lost with the process).

use super::api::{FrontEnd, bind, router};
use super::{AppError, EncoderChoice};
use crate::adapters::embedded_index::EmbeddedIndex;
use crate::adapters::memory_queue::{MemoryQueue, QueueLimits};
use crate::adapters::stderr_logs::StderrLogs;
use crate::api::ports::Readiness;
use crate::api::server::ServerLimits;
use crate::config::ConfigError;
use crate::hash::ImageHash;
use crate::orchestrator::{Orchestrator, Settings};
use crate::ports::FaceEncoder;
use crate::runner::{self, Observe, Observer, Report, RunOptions, RunStats};
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Everything `facerec serve` needs, already checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address, limits, token, CORS, fetch policy: as `facerec api`.
    pub front: FrontEnd,
    /// dlib or recorded encodings.
    pub encoder: EncoderChoice,
    /// The index file (`None`: in memory only).
    pub index: Option<PathBuf>,
    /// Orchestrator settings (tolerance, attempts, limits).
    pub pipeline: Settings,
    /// Concurrency and retry delays.
    pub run: RunOptions,
    /// How much the in-process queue holds.
    pub queue: QueueLimits,
    /// Files larger than this are skipped by the folder scan (the encoder's image limit).
    pub max_image_bytes: usize,
}

/// Told about the folder scan, for display.
pub trait ScanEvents: Send + Sync {
    /// `images` files are about to be queued.
    fn listed(&self, images: usize);
    /// A file is not queued, and why.
    fn skipped(&self, path: &Path, reason: &str);
}

/// What the folder scan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderScan {
    /// Images queued.
    pub queued: usize,
    /// Files skipped (not images, over the limit, unreadable).
    pub skipped: usize,
    /// Whether every queued image was processed (`false`: stopped by a signal).
    pub finished: bool,
}

/// Readiness: the encoder is not stuck and the runner takes deliveries.
struct Watch {
    encoder: Arc<dyn FaceEncoder>,
    paused: Mutex<Option<String>>,
    inner: Observer,
}

impl Observe for Watch {
    fn taken(&self) {
        self.inner.taken();
    }
    fn settled(&self, report: &Report) {
        self.inner.settled(report);
    }
    fn paused(&self, reason: Option<&str>) {
        *self.paused.lock().expect("lock") = reason.map(str::to_owned);
        self.inner.paused(reason);
    }
}

impl Readiness for Watch {
    fn not_ready(&self) -> Option<String> {
        if let Some(reason) = self.paused.lock().expect("lock").clone() {
            return Some(format!("taking no images: {reason}"));
        }
        self.encoder.stalled()
    }
}

/// A started `serve`: address bound (not answering yet), worker running.
pub struct Serve {
    listener: TcpListener,
    address: SocketAddr,
    router: axum::Router,
    server: ServerLimits,
    queue: Arc<MemoryQueue>,
    index: Arc<EmbeddedIndex>,
    index_file: Option<PathBuf>,
    worker: JoinHandle<Result<RunStats, crate::ports::SourceError>>,
    shutdown: CancellationToken,
    max_image_bytes: usize,
}

impl Serve {
    /// Opens the index, starts the encoder and the worker, binds the address. `observer`
    /// hears of every image the worker settles (progress); `shutdown` stops everything.
    ///
    /// # Errors
    /// A missing model or recording file, an index file that is not one, an address that
    /// cannot be bound.
    pub async fn start(config: ServeConfig, observer: Observer, shutdown: CancellationToken) -> Result<Self, AppError> {
        let index = Arc::new(super::embedded_index(config.index.as_deref())?);
        let encoder = super::encoder(&config.encoder)?;
        let (listener, address) = bind(&config.front).await?;
        let queue = Arc::new(MemoryQueue::new(config.queue, index.clone()));
        let watch = Arc::new(Watch { encoder: encoder.clone(), paused: Mutex::new(None), inner: observer });
        let router = router(
            &config.front,
            index.clone(),
            queue.clone(),
            Arc::new(StderrLogs),
            watch.clone(),
            Some(encoder.clone()),
        );
        let orchestrator = Arc::new(Orchestrator::new(encoder, index.clone(), StderrLogs, config.pipeline));
        let worker = tokio::spawn(runner::run(orchestrator, queue.clone(), config.run, shutdown.clone(), watch));
        Ok(Self {
            listener,
            address,
            router,
            server: config.front.server,
            queue,
            index,
            index_file: config.index,
            worker,
            shutdown,
            max_image_bytes: config.max_image_bytes,
        })
    }

    /// The address bound (the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The index (what is stored so far).
    pub fn index(&self) -> &Arc<EmbeddedIndex> {
        &self.index
    }

    /// The in-process queue.
    pub fn queue(&self) -> &Arc<MemoryQueue> {
        &self.queue
    }

    /// Queues every image file under `paths` (folders recursively, in name order; files
    /// are sniffed, not judged by their extension) and waits until the worker has
    /// processed them all, or `shutdown`. Non-images, files over the image limit and
    /// unreadable files are skipped, each told to `events`.
    ///
    /// # Errors
    /// A path that does not exist.
    pub async fn scan_folders(&self, paths: &[PathBuf], events: &dyn ScanEvents) -> Result<FolderScan, AppError> {
        let mut files = Vec::new();
        for path in paths {
            list(path, &mut files)?;
        }
        let mut scan = FolderScan::default();
        let mut images = Vec::with_capacity(files.len());
        for file in files {
            match self.check(&file) {
                Ok(()) => images.push(file),
                Err(reason) => {
                    scan.skipped += 1;
                    events.skipped(&file, &reason);
                }
            }
        }
        events.listed(images.len());
        for file in images {
            let image = match std::fs::read(&file) {
                Ok(bytes) => bytes,
                Err(e) => {
                    scan.skipped += 1;
                    events.skipped(&file, &format!("cannot read it: {e}"));
                    continue;
                }
            };
            let hash = ImageHash::of_bytes(&image);
            if !self.queue.submit_waiting(&hash, &file.display().to_string(), &image, &self.shutdown).await {
                return Ok(scan);
            }
            scan.queued += 1;
        }
        scan.finished = self.queue.until_empty(&self.shutdown).await;
        Ok(scan)
    }

    /// Why `file` is not queued, or `Ok`: only the first bytes are read.
    fn check(&self, file: &Path) -> Result<(), String> {
        let size = std::fs::metadata(file).map_err(|e| format!("cannot read it: {e}"))?.len();
        if size > self.max_image_bytes as u64 {
            return Err(format!("{size} bytes, over the image limit of {} bytes", self.max_image_bytes));
        }
        let mut head = Vec::with_capacity(32);
        std::fs::File::open(file)
            .and_then(|f| f.take(32).read_to_end(&mut head))
            .map_err(|e| format!("cannot read it: {e}"))?;
        if !crate::api::fetch::is_image(&head) {
            return Err("not an image (JPEG, PNG, GIF, BMP or WebP)".into());
        }
        Ok(())
    }

    /// Serves until `shutdown`; then lets the images in flight finish, and logs what was
    /// still queued (never processed: it is lost with the process). The index file holds
    /// every image stored (each write is fsynced as it happens).
    ///
    /// # Errors
    /// The worker's source failed (a bug: the in-process queue does not fail).
    pub async fn run(self) -> Result<RunStats, AppError> {
        tracing::info!(address = %self.address, "facerec serve listening");
        crate::api::server::serve(self.listener, self.router, self.server, self.shutdown.clone()).await;
        tracing::info!("stopping: finishing the images in flight");
        // The runner catches panics of each image; one of the loop itself is a bug: pass it on.
        let stats = self.worker.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        let left = self.queue.close();
        if !left.is_empty() {
            let names: Vec<String> =
                left.iter().take(10).map(|u| crate::log_lines::escape(&u.name).into_owned()).collect();
            tracing::warn!(
                count = left.len(),
                first = %names.join(", "),
                "queued images were not processed and are lost: submit them again"
            );
        }
        match &self.index_file {
            Some(file) => tracing::info!(index = %file.display(), images = self.index.records().len(), "index kept"),
            None => tracing::info!("the index was in memory only (use --index FILE to keep it)"),
        }
        Ok(stats)
    }
}

/// Every file under `path` (itself when it is a file), in name order.
fn list(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), AppError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| AppError::Config(ConfigError::invalid("DIR", format!("{}: {e}", path.display()))))?;
    if !meta.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
        match entry {
            Ok(entry) if entry.file_type().is_file() => out.push(entry.into_path()),
            Ok(_) => {}
            // An unreadable sub-folder: say so and go on with the rest.
            Err(e) => tracing::warn!(error = %e, "skipping part of a folder"),
        }
    }
    Ok(())
}
