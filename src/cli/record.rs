//! `facerec record IMAGE... -o FILE`: saves real dlib encodings for the recorded encoder.

use super::encoder_args::EncoderArgs;
use crate::adapters::recorded_encoder::{FORMAT, RecordedImage, Recording};
use crate::app::{self, EncoderChoice};
use crate::hash::ImageHash;
use crate::ports::FaceEncoder;
use anyhow::Context as _;
use std::path::PathBuf;

/// Record the encodings of images, for hermetic tests and replays without dlib.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Image files.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Recording file to write (JSON).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Encoder settings.
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// Runs the command.
pub async fn run(args: RecordArgs) -> anyhow::Result<()> {
    let encoder = app::encoder(&EncoderChoice::Dlib(args.encoder.settings()))?;
    let mut images = Vec::new();
    for path in &args.images {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let hash = ImageHash::of_bytes(&bytes);
        let encoded = encoder.encode(&hash, &bytes).await.with_context(|| path.display().to_string())?;
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        eprintln!("{name}: {} faces", encoded.faces.len());
        images.push(RecordedImage { hash, name, width: encoded.width, height: encoded.height, faces: encoded.faces });
    }
    let recording = Recording { format: FORMAT.to_owned(), fingerprint: encoder.fingerprint(), images };
    recording.save(&args.output)?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}
