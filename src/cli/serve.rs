//! `facerec serve [DIR...]`: the API, the page and a worker in one process, with no
//! servers. Scans the folders given first (a progress bar on the terminal), then prints
//! the address and serves until Ctrl-C / SIGTERM.

use super::api::FrontEndArgs;
use super::encoder_args::EncoderArgs;
use super::pipeline_args::PipelineArgs;
use crate::adapters::memory_queue::QueueLimits;
use crate::app;
use crate::app::serve::{ScanEvents, Serve, ServeConfig};
use crate::config::ConfigError;
use crate::orchestrator::Outcome;
use crate::runner::Report;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Serve the API and the page with a worker inside: no RabbitMQ, no Redis.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Folders (or image files) to scan before serving; every image file in them is queued.
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "FACEREC_API_ADDR", default_value = "127.0.0.1:5000")]
    pub addr: String,
    /// Keep the index in this file: images stored survive a restart (the queue does not).
    #[arg(long, value_name = "FILE")]
    pub index: Option<PathBuf>,
    /// Replay encodings recorded by `facerec record` instead of running dlib (tests, demos).
    #[arg(long, alias = "encodings", env = "FACEREC_ENCODINGS", value_name = "FILE")]
    pub recorded: Option<PathBuf>,
    /// With --recorded: pretend each image takes this long to encode.
    #[arg(long, env = "FACEREC_RECORDED_DELAY_MS", default_value_t = 0)]
    pub recorded_delay_ms: u64,
    /// Images the in-process queue holds (waiting and in progress); past it submissions
    /// get 503.
    #[arg(long, env = "FACEREC_SERVE_QUEUE_IMAGES", default_value_t = QueueLimits::default().max_images)]
    pub queue_images: usize,
    /// MiB of images the in-process queue holds; past it submissions get 503.
    #[arg(long, env = "FACEREC_SERVE_QUEUE_MB", default_value_t = QueueLimits::default().max_bytes >> 20)]
    pub queue_mb: usize,
    /// Token, limits, CORS, URL fetching: as `facerec api`.
    #[command(flatten)]
    pub front: FrontEndArgs,
    /// Face detection and encoding.
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Matching and retries.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

impl ServeArgs {
    /// The checked configuration.
    ///
    /// # Errors
    /// The first setting that cannot be used.
    pub fn config(&self) -> Result<ServeConfig, ConfigError> {
        let host = app::hostname(None);
        let front = self.front.config(&self.addr, host.clone())?;
        // Before the encoder loads its models: a typo in a folder name is told at once.
        if let Some(missing) = self.dirs.iter().find(|d| !d.exists()) {
            return Err(ConfigError::invalid("DIR", format!("{} does not exist", missing.display())));
        }
        if self.queue_images == 0 || self.queue_mb == 0 {
            return Err(ConfigError::invalid("FACEREC_SERVE_QUEUE_IMAGES/_MB", "must be above 0"));
        }
        let encoder = self.encoder.choice(self.recorded.as_deref(), Duration::from_millis(self.recorded_delay_ms));
        Ok(ServeConfig {
            front,
            encoder,
            index: self.index.clone(),
            pipeline: self.pipeline.settings(&host),
            run: self.pipeline.run_options(),
            queue: QueueLimits { max_images: self.queue_images, max_bytes: self.queue_mb.saturating_mul(1 << 20) },
            max_image_bytes: self.encoder.max_image_bytes,
        })
    }
}

/// The folder scan's progress bar, shown on the terminal while the folders are processed.
struct Progress(ProgressBar);

impl ScanEvents for Progress {
    fn listed(&self, images: usize) {
        self.0.set_length(images as u64);
        self.0.set_draw_target(ProgressDrawTarget::stderr());
        // Log lines are written above the bar instead of through it.
        crate::telemetry::log_above(Some(self.0.clone()));
    }

    fn skipped(&self, path: &Path, reason: &str) {
        let path = crate::log_lines::escape(&path.display().to_string()).into_owned();
        self.0.suspend(|| eprintln!("skipped {path}: {reason}"));
    }
}

/// Runs the command until SIGTERM/SIGINT.
///
/// # Errors
/// A setting that cannot be used, a folder that does not exist, an address in use.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let shutdown = crate::shutdown::on_signals();
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta} {msg}")
            .context("progress template")?,
    );
    let counted = bar.clone();
    let observer = Arc::new(move |report: &Report| {
        if !matches!(report.outcome, Outcome::Retry { .. }) {
            counted.inc(1);
        }
    });
    let serve = Serve::start(config, observer, shutdown.clone()).await?;
    if !args.dirs.is_empty() {
        let progress = Progress(bar.clone());
        let scan = serve.scan_folders(&args.dirs, &progress).await;
        crate::telemetry::log_above(None);
        bar.finish_and_clear();
        bar.set_draw_target(ProgressDrawTarget::hidden());
        let scan = scan?;
        let failed = serve.queue().dead_lettered();
        eprintln!("scanned {} images ({} skipped, {failed} failed)", scan.queued, scan.skipped);
    }
    if !shutdown.is_cancelled() {
        println!("facerec is running at http://{}/", serve.address());
    }
    serve.run().await?;
    Ok(())
}
