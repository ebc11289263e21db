//! `facerec forget HASH|NAME... [--face PHOTO]`: erase images, or every image of one
//! person, from Redis, and say what was erased.
//!
//! Audit: one line (`audit: forget ...`) with the erased hashes and counts, never names,
//! encodings or image data, on stderr and on the logs exchange as `<host>.worker.info`
//! (where the workers' lines go, so one consumer sees every erase). The broker is given at
//! most [`AUDIT_WAIT`] once the erase is done; when it does not take the line, stderr says
//! so and the command still succeeds: the erase is never undone or failed for a log line.

use super::connection_args::{BrokerArgs, RedisArgs};
use super::encoder_args::EncoderArgs;
use crate::app;
use crate::hash::ImageHash;
use crate::log_lines::escape;
use crate::ports::{FaceIndex, Forgotten, LogSink as _};
use anyhow::{Context as _, bail};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Longest wait for RabbitMQ to take the audit line, once the erase is done.
pub const AUDIT_WAIT: Duration = Duration::from_secs(5);

/// Erase images (by hash or name), or every image showing a face of a photo.
#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    /// Image hashes or names to erase.
    pub images: Vec<String>,
    /// Also erase every stored image with a face within --tolerance of a face in this photo.
    #[arg(long, value_name = "PHOTO")]
    pub face: Option<PathBuf>,
    /// Distance for --face (stricter than the matching tolerance: erase only the person).
    #[arg(long, default_value_t = 0.5)]
    pub tolerance: f64,
    /// Show what would be erased, erase nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Encodings recorded by `facerec record` to use for --face instead of dlib.
    #[arg(long, env = "FACEREC_ENCODINGS", value_name = "FILE")]
    pub encodings: Option<PathBuf>,
    /// Encoder for --face.
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Redis.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// RabbitMQ, for the audit line on the logs exchange.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Names the audit line's routing key `<name>.worker.info` [default: the host name]
    #[arg(long, env = "FACEREC_HOSTNAME")]
    pub hostname: Option<String>,
}

#[derive(Serialize)]
struct Target {
    hash: ImageHash,
    names: Vec<String>,
    faces: usize,
    matches: usize,
}

#[derive(Serialize)]
struct Out {
    dry_run: bool,
    /// What was found before erasing.
    targets: Vec<Target>,
    /// What the erase reported (absent on a dry run).
    result: Option<Forgotten>,
    /// Arguments that named no stored image.
    not_found: Vec<String>,
}

/// Runs the command.
pub async fn run(args: ForgetArgs) -> anyhow::Result<()> {
    if args.images.is_empty() && args.face.is_none() {
        bail!("name at least one image (hash or name), or --face PHOTO");
    }
    let host = app::hostname(args.hostname.as_deref());
    let amqp = args.broker.settings(&host, 1, 1)?;
    let settings = args.redis.settings()?;
    let url = settings.url.clone();
    let index = app::redis_index(settings).await.with_context(|| format!("Redis at {url}"))?;
    let mut hashes: BTreeSet<ImageHash> = BTreeSet::new();
    let mut not_found = Vec::new();
    for arg in &args.images {
        match index.hash_of(arg).await? {
            Some(h) => {
                hashes.insert(h);
            }
            None => match ImageHash::parse(arg) {
                // A hash with nothing stored is still erased: half-written leftovers go too.
                Ok(h) => {
                    if index.image(&h).await?.is_none() {
                        not_found.push(arg.clone());
                    }
                    hashes.insert(h);
                }
                Err(_) => not_found.push(arg.clone()),
            },
        }
    }
    if let Some(photo) = &args.face {
        let bytes = std::fs::read(photo).with_context(|| format!("reading {}", photo.display()))?;
        let encoder = app::encoder(&args.encoder.choice(args.encodings.as_deref(), std::time::Duration::ZERO))?;
        let image = encoder.encode(&ImageHash::of_bytes(&bytes), &bytes).await?;
        if image.faces.is_empty() {
            bail!("no face found in {}", photo.display());
        }
        let faces: Vec<_> = image.faces.iter().map(|f| f.encoding).collect();
        hashes.extend(index.find_faces(&faces, args.tolerance).await?.into_iter().map(|m| m.hash));
    }
    let mut targets = Vec::new();
    for hash in &hashes {
        if let Some(r) = index.image(hash).await? {
            targets.push(Target {
                hash: hash.clone(),
                names: r.names.into_iter().collect(),
                faces: r.faces.len(),
                matches: r.matches.len(),
            });
        }
    }
    let hashes: Vec<ImageHash> = hashes.into_iter().collect();
    let result = if args.dry_run {
        None
    } else {
        // Connecting while Redis erases: the audit line then rarely waits.
        let logs = app::log_sink(amqp);
        let done = index.forget(&hashes).await?;
        audit(&logs, &format!("{host}.worker.info"), &audit_line(&done)).await;
        Some(done)
    };
    let out = Out { dry_run: args.dry_run, targets, result, not_found };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_text(&out);
    }
    index.close().await;
    Ok(())
}

/// Hashes and counts of what was erased; never names, encodings or image data.
fn audit_line(done: &Forgotten) -> String {
    let faces: usize = done.erased.iter().map(|e| e.faces).sum();
    let names: usize = done.erased.iter().map(|e| e.names.len()).sum();
    let erased: Vec<&str> = done.erased.iter().map(|e| e.hash.as_str()).collect();
    format!(
        "audit: forget erased {} images ({faces} faces, {names} names), {} unknown: {}",
        done.erased.len(),
        done.unknown.len(),
        erased.join(" ")
    )
}

/// Prints `line` on stderr and publishes it under `key`, waiting at most [`AUDIT_WAIT`].
async fn audit(logs: &crate::adapters::amqp::logs::AmqpLogs, key: &str, line: &str) {
    eprintln!("{line}");
    logs.publish(key, line).await;
    logs.close(AUDIT_WAIT).await;
    if logs.sent() == 0 {
        eprintln!(
            "audit: the line above was NOT published on the logs exchange (RabbitMQ did not take it within {}s); \
             the erase is done: keep this output as its record",
            AUDIT_WAIT.as_secs()
        );
    }
}

fn print_text(out: &Out) {
    let verb = if out.dry_run { "would erase" } else { "erasing" };
    println!("{verb} {} images:", out.targets.len());
    for t in &out.targets {
        let names: Vec<String> = t.names.iter().map(|n| escape(n).into_owned()).collect();
        println!("  {}  {} faces, {} matches  {}", t.hash, t.faces, t.matches, names.join(", "));
    }
    for arg in &out.not_found {
        println!("not found: {}", escape(arg));
    }
    if let Some(done) = &out.result {
        let faces: usize = done.erased.iter().map(|e| e.faces).sum();
        let links: usize = done.erased.iter().map(|e| e.matches).sum();
        println!(
            "erased {} images: {faces} faces, {links} links; {} already absent",
            done.erased.len(),
            done.unknown.len()
        );
        for e in &done.erased {
            let names: Vec<String> = e.names.iter().map(|n| escape(n).into_owned()).collect();
            println!("  {}  {}", e.hash, names.join(", "));
        }
    }
}
