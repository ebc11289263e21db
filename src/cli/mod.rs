//! The `facerec` command line: one file per subcommand; `main.rs` only dispatches.

pub mod encoder_args;
pub mod faces;

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
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the subcommand reports.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Faces(args) => faces::run(args).await,
    }
}
