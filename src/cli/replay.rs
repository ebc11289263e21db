//! `facerec replay FILE|DIR...`: feeds captured messages through the same orchestrator,
//! with the in-memory or the Redis index and dlib or recorded encodings.

use super::connection_args::RedisArgs;
use super::encoder_args::EncoderArgs;
use super::pipeline_args::PipelineArgs;
use crate::adapters::file_source::{FileKind, FileSource};
use crate::adapters::stderr_logs::StderrLogs;
use crate::app;
use crate::log_lines::escape;
use crate::orchestrator::{Orchestrator, Outcome};
use crate::ports::{FaceIndex, Settlement};
use crate::runner::{self, Report};
use std::path::PathBuf;
use std::sync::Arc;

/// Which index a replay writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IndexKind {
    /// In memory, gone when the replay ends.
    Memory,
    /// The Redis databases (see the Redis flags).
    Redis,
}

/// Replay captured messages through the pipeline.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// `*.fcap` files or folders of them.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    /// Where results go.
    #[arg(long, value_enum, default_value = "memory")]
    pub index: IndexKind,
    /// Use encodings recorded by `facerec record` instead of running dlib.
    #[arg(long, value_name = "FILE")]
    pub encodings: Option<PathBuf>,
    /// Matching and retries.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Face detection and encoding (when not using recorded encodings).
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Redis (with `--index redis`).
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// Runs the command; fails if any message was dead-lettered.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let encoder = app::encoder(&args.encoder.choice(args.encodings.as_deref(), std::time::Duration::ZERO))?;
    let index: Arc<dyn FaceIndex> = match args.index {
        IndexKind::Memory => Arc::new(app::embedded_index(None)?),
        IndexKind::Redis => Arc::new(app::redis_index(args.redis.settings()?).await?),
    };
    let source = Arc::new(FileSource::new(FileKind::Captures, &args.paths)?);
    let settings = args.pipeline.settings(&app::hostname(None));
    let orchestrator = Arc::new(Orchestrator::new(encoder, index, StderrLogs, settings));
    let observer = Arc::new(|report: &Report| match &report.outcome {
        Outcome::Stored { hash, name, faces, matches, .. } => {
            let list: Vec<&str> = matches.iter().map(|m| m.hash.as_str()).collect();
            println!("stored {hash} \"{}\": {faces} faces, matches [{}]", escape(name), list.join(", "));
        }
        Outcome::NameAdded { hash, name } => {
            println!("known  {hash} \"{}\": name added", escape(name))
        }
        Outcome::Retry { reason, .. } => println!("retry: {}", escape(reason)),
        Outcome::Rejected { reason, .. } => println!("dead-letter: {}", escape(reason)),
    });
    let shutdown = crate::shutdown::on_signals();
    let stats = runner::run(orchestrator, source.clone(), args.pipeline.run_options(), shutdown, observer).await?;
    let failed: Vec<_> =
        source.settled().into_iter().filter(|(_, s)| matches!(s, Settlement::DeadLetter { .. })).collect();
    for (path, s) in &failed {
        if let Settlement::DeadLetter { reason } = s {
            eprintln!("{}: {}", path.display(), escape(reason));
        }
    }
    eprintln!("replayed {} messages: {} acked, {} dead-lettered", stats.taken, stats.acked, stats.dead_lettered);
    anyhow::ensure!(failed.is_empty(), "{} messages could not be processed", failed.len());
    Ok(())
}
