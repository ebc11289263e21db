//! `facerec reindex --tolerance T [--force] [--json]`: rebuild db 4 and the stored
//! distances for a new tolerance from db 3, without re-encoding (src/app/reindex.rs), and
//! record it. Refuses while workers run at another tolerance, unless `--force`.

use super::connection_args::RedisArgs;
use super::pipeline_args::parse_tolerance;
use crate::app;
use crate::app::reindex::{ReindexOutcome, ReindexRequest};
use crate::reindex::Method;
use anyhow::Context as _;

/// Rebuild the matches for a new tolerance.
#[derive(Debug, clap::Args)]
pub struct ReindexArgs {
    /// The new tolerance: faces at Euclidean distance <= it are the same person.
    #[arg(long, value_parser = parse_tolerance)]
    pub tolerance: f64,
    /// Reindex although workers run at another tolerance (they will keep linking new
    /// images at theirs until restarted).
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Redis.
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// Runs the command.
pub async fn run(args: ReindexArgs) -> anyhow::Result<()> {
    let settings = args.redis.settings()?;
    let url = settings.url.clone();
    let index = app::redis_index(settings).await.with_context(|| format!("Redis at {url}"))?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let request = ReindexRequest { tolerance: args.tolerance, force: args.force, threads };
    let outcome = app::reindex::run(&index, request).await;
    index.close().await;
    let outcome = outcome?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_text(&outcome);
    }
    Ok(())
}

fn print_text(o: &ReindexOutcome) {
    for w in &o.forced_past {
        println!(
            "warning: {} runs at tolerance {}: it keeps linking new images at it until restarted",
            w.host, w.tolerance
        );
    }
    let previous = o.previous.map_or_else(|| "none recorded".to_owned(), |t| t.to_string());
    let how = match o.method {
        Method::Filter => "stored distances filtered",
        Method::Kernel => "every face compared",
    };
    println!(
        "reindexed to tolerance {} (was {previous}; {how}): {} pairs linked, {} images changed",
        o.tolerance, o.pairs, o.images_changed
    );
    println!(
        "read {:.2} s, planned {:.2} s, wrote {:.2} s",
        o.read.as_secs_f64(),
        o.plan.as_secs_f64(),
        o.write.as_secs_f64()
    );
    if !o.left_out.foreign_keys.is_empty() {
        println!("keys of another type left alone: {}", o.left_out.foreign_keys.len());
        for key in o.left_out.foreign_keys.iter().take(5) {
            println!("  {key}");
        }
    }
    if o.left_out.erased_meanwhile > 0 {
        println!("links not written because an image was erased meanwhile: {}", o.left_out.erased_meanwhile);
    }
}
