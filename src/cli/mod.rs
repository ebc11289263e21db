//! The `facerec` command line: one file per subcommand; `main.rs` only dispatches.

pub mod encoder_args;
pub mod faces;
pub mod pipeline_args;
pub mod record;
pub mod scan;

/// facerec: find faces in images and link the images that share a face.
#[derive(Debug, clap::Parser)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the faces found in images (boxes and encodings).
    Faces(faces::FacesArgs),
    /// Scan folders of photos with no servers: faces, matching images, people.
    Scan(scan::ScanArgs),
    /// Record real encodings to a file, for tests and replays without dlib.
    Record(record::RecordArgs),
}

impl Command {
    /// Process log level when `RUST_LOG` is unset: long-running services report at info;
    /// interactive commands only warn, so their own output stays readable.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Faces(_) | Command::Scan(_) | Command::Record(_) => "warn",
        }
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the subcommand reports.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Faces(args) => faces::run(args).await,
        Command::Scan(args) => scan::run(args).await,
        Command::Record(args) => record::run(args).await,
    }
}
