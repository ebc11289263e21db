//! `facerec scan PATH...`: the whole pipeline on a folder of photos, with no servers.
//!
//! Same orchestrator as the worker, with a folder source, the dlib encoder and the
//! embedded index (in memory, or a journal file with `--index`, so a second scan only
//! encodes new images). Prints each image's matches and the people found.

use super::encoder_args::EncoderArgs;
use super::pipeline_args::PipelineArgs;
use crate::adapters::file_source::{FileKind, FileSource};
use crate::adapters::stderr_logs::StderrLogs;
use crate::app;
use crate::hash::ImageHash;
use crate::log_lines::escape;
use crate::orchestrator::{Orchestrator, Outcome};
use crate::people::{FaceRef, group};
use crate::ports::{ImageRecord, Settlement};
use crate::runner::{self, Report};
use anyhow::Context as _;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

/// Find faces in a folder and show which images share a person (no servers needed).
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Image files or folders (searched recursively for jpg, jpeg, png, gif, bmp, webp).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Keep the index in this file: a later scan only encodes images it has not seen.
    #[arg(long, value_name = "FILE")]
    pub index: Option<PathBuf>,
    /// Use encodings recorded by `facerec record` instead of running dlib.
    #[arg(long, value_name = "FILE")]
    pub encodings: Option<PathBuf>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Encoder settings.
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Matching and retry settings.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Runs the command.
pub async fn run(args: ScanArgs) -> anyhow::Result<()> {
    let encoder = app::encoder(&args.encoder.choice(args.encodings.as_deref(), std::time::Duration::ZERO))?;
    let index = Arc::new(app::embedded_index(args.index.as_deref())?);
    let source = Arc::new(FileSource::new(FileKind::Images, &args.paths)?);
    let settings = args.pipeline.settings(&app::hostname(None));
    let tolerance = settings.tolerance;
    let orchestrator = Arc::new(Orchestrator::new(encoder, index.clone(), StderrLogs, settings));

    let bar = indicatif::ProgressBar::new(source.remaining() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta} {msg}")
            .context("progress template")?,
    );
    let observer_bar = bar.clone();
    let observer = Arc::new(move |report: &Report| {
        if let Outcome::Stored { faces, .. } = &report.outcome {
            observer_bar.set_message(format!("(last: {faces} faces)"));
        }
        if !matches!(report.outcome, Outcome::Retry { .. }) {
            observer_bar.inc(1);
        }
    });
    let shutdown = crate::shutdown::on_signals();
    let stats = runner::run(orchestrator, source.clone(), args.pipeline.run_options(), shutdown, observer).await?;
    bar.finish_and_clear();

    let failed: Vec<(PathBuf, String)> = source
        .settled()
        .into_iter()
        .filter_map(|(path, s)| match s {
            Settlement::DeadLetter { reason } => Some((path, reason)),
            _ => None,
        })
        .collect();
    let report = ScanReport::new(index.records(), tolerance, failed);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        report.print(&mut out)?;
    }
    tracing::debug!(?stats, "scan finished");
    anyhow::ensure!(report.failed.is_empty(), "{} files could not be scanned", report.failed.len());
    Ok(())
}

#[derive(Serialize)]
struct MatchLine {
    hash: ImageHash,
    names: Vec<String>,
    distance: f64,
}

#[derive(Serialize)]
struct ImageLine {
    hash: ImageHash,
    names: Vec<String>,
    faces: usize,
    matches: Vec<MatchLine>,
}

#[derive(Serialize)]
struct PersonFace {
    hash: ImageHash,
    name: String,
    face: usize,
}

#[derive(Serialize)]
struct FailedLine {
    path: String,
    reason: String,
}

/// What `scan` prints.
#[derive(Serialize)]
struct ScanReport {
    tolerance: f64,
    images: Vec<ImageLine>,
    people: Vec<Vec<PersonFace>>,
    failed: Vec<FailedLine>,
}

impl ScanReport {
    fn new(records: Vec<ImageRecord>, tolerance: f64, failed: Vec<(PathBuf, String)>) -> Self {
        let names: BTreeMap<&ImageHash, Vec<String>> =
            records.iter().map(|r| (&r.hash, r.names.iter().cloned().collect())).collect();
        let first_name = |h: &ImageHash| names.get(h).and_then(|n| n.first().cloned()).unwrap_or_default();
        let mut images: Vec<ImageLine> = records
            .iter()
            .map(|r| ImageLine {
                hash: r.hash.clone(),
                names: names[&r.hash].clone(),
                faces: r.faces.len(),
                matches: r
                    .matches
                    .iter()
                    .filter(|m| m.distance <= tolerance)
                    .map(|m| MatchLine {
                        hash: m.hash.clone(),
                        names: names.get(&m.hash).cloned().unwrap_or_default(),
                        distance: m.distance,
                    })
                    .collect(),
            })
            .collect();
        images.sort_by(|a, b| a.names.cmp(&b.names));
        let faces: Vec<_> = records
            .iter()
            .flat_map(|r| r.faces.iter().enumerate().map(|(i, e)| (FaceRef { hash: r.hash.clone(), face: i }, *e)))
            .collect();
        let people = group(&faces, tolerance)
            .into_iter()
            .map(|g| {
                let mut faces: Vec<PersonFace> = g
                    .into_iter()
                    .map(|f| PersonFace { name: first_name(&f.hash), hash: f.hash, face: f.face })
                    .collect();
                faces.sort_by(|a, b| a.name.cmp(&b.name));
                faces
            })
            .collect();
        let failed =
            failed.into_iter().map(|(p, reason)| FailedLine { path: p.display().to_string(), reason }).collect();
        Self { tolerance, images, people, failed }
    }

    fn print(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(out, "Images ({}), tolerance {}:", self.images.len(), self.tolerance)?;
        for image in &self.images {
            let name = image.names.first().map(|n| escape(n).into_owned()).unwrap_or_default();
            let faces = match image.faces {
                1 => "1 face".to_owned(),
                n => format!("{n} faces"),
            };
            if image.matches.is_empty() {
                writeln!(out, "  {name}  [{faces}]  no matching image")?;
            } else {
                let list: Vec<String> = image
                    .matches
                    .iter()
                    .map(|m| {
                        format!(
                            "{} ({:.3})",
                            m.names.first().map(|n| escape(n).into_owned()).unwrap_or_default(),
                            m.distance
                        )
                    })
                    .collect();
                writeln!(out, "  {name}  [{faces}]  matches {}", list.join(", "))?;
            }
            for other in image.names.iter().skip(1) {
                writeln!(out, "      also named {}", escape(other))?;
            }
        }
        writeln!(out, "People ({}):", self.people.len())?;
        for (i, person) in self.people.iter().enumerate() {
            let list: Vec<String> = person
                .iter()
                .map(|f| {
                    if f.face == 0 {
                        escape(&f.name).into_owned()
                    } else {
                        format!("{} (face {})", escape(&f.name), f.face + 1)
                    }
                })
                .collect();
            writeln!(out, "  person {}: {}", i + 1, list.join(", "))?;
        }
        if !self.failed.is_empty() {
            writeln!(out, "Not scanned ({}):", self.failed.len())?;
            for f in &self.failed {
                writeln!(out, "  {}: {}", escape(&f.path), escape(&f.reason))?;
            }
        }
        Ok(())
    }
}
