//! `facerec matches NAME|HASH`: the images that share a face with one image, from Redis.

use super::connection_args::RedisArgs;
use crate::app;
use crate::hash::ImageHash;
use crate::log_lines::escape;
use crate::ports::FaceIndex;
use anyhow::{Context as _, bail};
use serde::Serialize;

/// Show the images matching one image (by name or hash), nearest first.
#[derive(Debug, clap::Args)]
pub struct MatchesArgs {
    /// An image name (file name or URL as submitted) or hash.
    pub image: String,
    /// Only matches at distance <= this (a stricter tolerance is a query, not a re-scan).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Redis.
    #[command(flatten)]
    pub redis: RedisArgs,
}

#[derive(Serialize)]
struct MatchOut {
    hash: ImageHash,
    names: Vec<String>,
    /// Smallest face distance; null when another program recorded the match.
    distance: Option<f64>,
}

#[derive(Serialize)]
struct Out {
    hash: ImageHash,
    names: Vec<String>,
    faces: usize,
    matches: Vec<MatchOut>,
}

/// Runs the command.
pub async fn run(args: MatchesArgs) -> anyhow::Result<()> {
    let settings = args.redis.settings()?;
    let url = settings.url.clone();
    let index = app::redis_index(settings).await.with_context(|| format!("Redis at {url}"))?;
    let hash = match index.hash_of(&args.image).await? {
        Some(h) => h,
        None => match ImageHash::parse(&args.image) {
            Ok(h) if index.image(&h).await?.is_some() => h,
            _ => bail!("no image named or hashed {:?}", args.image),
        },
    };
    let record = index.image(&hash).await?.ok_or_else(|| anyhow::anyhow!("image {hash} has no record"))?;
    let mut matches = Vec::new();
    for m in &record.matches {
        // NaN (distance unknown) is kept out of a tolerance query.
        if args.tolerance.is_some_and(|t| m.distance.is_nan() || m.distance > t) {
            continue;
        }
        let names = index.image(&m.hash).await?.map(|r| r.names.into_iter().collect()).unwrap_or_default();
        matches.push(MatchOut { hash: m.hash.clone(), names, distance: (!m.distance.is_nan()).then_some(m.distance) });
    }
    let out = Out { hash: hash.clone(), names: record.names.into_iter().collect(), faces: record.faces.len(), matches };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let names: Vec<String> = out.names.iter().map(|n| escape(n).into_owned()).collect();
        println!("{} ({}; {} faces): {} matching images", out.hash, names.join(", "), out.faces, out.matches.len());
        for m in &out.matches {
            let d = m.distance.map_or_else(|| "   ?  ".to_owned(), |d| format!("{d:.4}"));
            let names: Vec<String> = m.names.iter().map(|n| escape(n).into_owned()).collect();
            println!("  {d}  {}  {}", m.hash, names.join(", "));
        }
    }
    index.close().await;
    Ok(())
}
