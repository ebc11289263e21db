//! `facerec faces IMAGE...`: the faces in each image, as a table or JSON lines.

use super::encoder_args::EncoderArgs;
use crate::app::{self, EncoderChoice};
use crate::face::{BoundingBox, Encoding};
use crate::hash::ImageHash;
use crate::ports::FaceEncoder;
use anyhow::Context as _;
use futures::StreamExt as _;
use serde::Serialize;
use std::io::Write as _;
use std::path::PathBuf;

/// Print the faces found in images.
#[derive(Debug, clap::Args)]
pub struct FacesArgs {
    /// Image files.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// One JSON object per line: path, hash, width, height, faces with box and encoding.
    #[arg(long)]
    pub json: bool,
    /// Encoder settings.
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

#[derive(Serialize)]
struct FaceLine<'a> {
    #[serde(flatten)]
    bbox: BoundingBox,
    encoding: &'a [f64],
}

#[derive(Serialize)]
struct ImageLine<'a> {
    path: String,
    hash: ImageHash,
    width: u32,
    height: u32,
    faces: Vec<FaceLine<'a>>,
}

/// Runs the command. Exits non-zero if any image could not be read or decoded, after
/// printing every image that could.
pub async fn run(args: FacesArgs) -> anyhow::Result<()> {
    let settings = args.encoder.settings();
    let parallel = settings.threads;
    let encoder = app::encoder(&EncoderChoice::Dlib(settings))?;
    let encoder = &encoder;
    let mut results = futures::stream::iter(args.images.iter())
        .map(|path| async move {
            let bytes = tokio::fs::read(path).await.with_context(|| format!("reading {}", path.display()))?;
            let hash = ImageHash::of_bytes(&bytes);
            let encoded = encoder.encode(&hash, &bytes).await.with_context(|| path.display().to_string())?;
            anyhow::Ok((path, hash, encoded))
        })
        .buffered(parallel);
    let mut failures = 0;
    let mut stdout = std::io::stdout().lock();
    while let Some(result) = results.next().await {
        let (path, hash, image) = match result {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e:#}");
                failures += 1;
                continue;
            }
        };
        if args.json {
            let line = ImageLine {
                path: path.display().to_string(),
                hash,
                width: image.width,
                height: image.height,
                faces: image
                    .faces
                    .iter()
                    .map(|f| FaceLine { bbox: f.bbox, encoding: encoding_values(&f.encoding) })
                    .collect(),
            };
            serde_json::to_writer(&mut stdout, &line)?;
            writeln!(stdout)?;
        } else {
            writeln!(stdout, "{} ({}x{}): {} faces", path.display(), image.width, image.height, image.faces.len())?;
            for f in &image.faces {
                let b = f.bbox;
                writeln!(stdout, "  top {} right {} bottom {} left {}", b.top, b.right, b.bottom, b.left)?;
            }
        }
    }
    anyhow::ensure!(failures == 0, "{failures} of {} images failed", args.images.len());
    Ok(())
}

fn encoding_values(e: &Encoding) -> &[f64] {
    &e.0
}
