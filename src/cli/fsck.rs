//! `facerec fsck [--repair] [--json]`: check the Redis databases against the schema's
//! invariants (src/fsck.rs), print each kind of damage with counts and examples, and with
//! `--repair` fix what the data allows. Exit status 1 when anything was wrong.

use super::connection_args::RedisArgs;
use crate::app;
use crate::config::ConfigError;
use crate::fsck::{Report, check};
use anyhow::Context as _;
use std::time::Instant;

/// Check (and repair) the databases.
#[derive(Debug, clap::Args)]
pub struct FsckArgs {
    /// Fix what can be fixed (db 4 recomputed, dangling names and records dropped).
    #[arg(long)]
    pub repair: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The tolerance db 4 was built with [default: the one `facerec reindex` recorded in
    /// Redis, else FACEREC_TOLERANCE, else 0.6]
    #[arg(long, value_parser = super::pipeline_args::parse_tolerance)]
    pub tolerance: Option<f64>,
    /// Redis.
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// Runs the command.
pub async fn run(args: FsckArgs) -> anyhow::Result<()> {
    let settings = args.redis.settings()?;
    let url = settings.url.clone();
    let index = app::redis_index(settings).await.with_context(|| format!("Redis at {url}"))?;
    let tolerance = match args.tolerance {
        Some(t) => t,
        None => index.recorded_tolerance().await?.map_or_else(worker_tolerance, Ok)?,
    };
    let started = Instant::now();
    let snapshot = index.snapshot().await?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let report = tokio::task::spawn_blocking(move || check(&snapshot, tolerance, threads)).await?;
    let seconds = started.elapsed().as_secs_f64();
    if args.repair && !report.fixes.is_empty() {
        index.apply_fixes(&report.fixes).await?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report, args.repair, seconds);
    }
    index.close().await;
    if !report.is_clean() {
        std::process::exit(1);
    }
    Ok(())
}

/// The workers' setting, for a database whose tolerance was never recorded.
fn worker_tolerance() -> Result<f64, ConfigError> {
    match std::env::var("FACEREC_TOLERANCE") {
        Ok(v) => super::pipeline_args::parse_tolerance(&v).map_err(|e| ConfigError::invalid("FACEREC_TOLERANCE", e)),
        Err(_) => Ok(0.6),
    }
}

fn print_text(report: &Report, repaired: bool, seconds: f64) {
    if report.is_clean() {
        println!("clean ({seconds:.2} s)");
        return;
    }
    for (kind, found) in &report.violations {
        println!("{kind:?}: {}", found.len());
        for example in found.iter().take(5) {
            println!("  {example}");
        }
    }
    let verb = if repaired { "applied" } else { "would apply (--repair)" };
    println!("{verb} {} fixes ({seconds:.2} s)", report.fixes.len());
}
