//! The `facerec` command line: one file per subcommand; `main.rs` only dispatches.

pub mod api;
pub mod capture;
pub mod connection_args;
pub mod encoder_args;
pub mod faces;
pub mod forget;
pub mod fsck;
pub mod logs;
pub mod matches;
pub mod pipeline_args;
pub mod record;
pub mod reindex;
pub mod replay;
pub mod scan;
pub mod serve;
pub mod submit;
pub mod worker;

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
    /// Serve the API and the page with a worker inside, no servers (scans DIRs first).
    Serve(Box<serve::ServeArgs>),
    /// Record real encodings to a file, for tests and replays without dlib.
    Record(record::RecordArgs),
    /// Run the REST front-end: the course's routes and /api/v1, in front of the workers.
    Api(Box<api::ApiArgs>),
    /// Run the worker: consume toWorker, store faces and matches in Redis, log to logs.
    Worker(Box<worker::WorkerArgs>),
    /// Publish images (files, folders, URLs) to toWorker and print their hashes.
    Submit(submit::SubmitArgs),
    /// Show the images that share a face with one image (by name or hash).
    Matches(matches::MatchesArgs),
    /// Print the logs exchange live.
    Logs(logs::LogsArgs),
    /// Erase images, or every image of a person, from Redis.
    Forget(Box<forget::ForgetArgs>),
    /// Check the Redis databases against the schema; --repair fixes what it can.
    Fsck(fsck::FsckArgs),
    /// Rebuild the matches (db 4, distances) for a new tolerance, without re-encoding.
    Reindex(reindex::ReindexArgs),
    /// Save messages from a queue to files.
    Capture(capture::CaptureArgs),
    /// Feed captured messages through the pipeline.
    Replay(Box<replay::ReplayArgs>),
}

impl Command {
    /// Process log level when `RUST_LOG` is unset: long-running services report at info;
    /// interactive commands only warn, so their own output stays readable.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Faces(_) | Command::Scan(_) | Command::Record(_) => "warn",
            Command::Worker(_) | Command::Api(_) | Command::Serve(_) => "info",
            Command::Submit(_)
            | Command::Matches(_)
            | Command::Forget(_)
            | Command::Fsck(_)
            | Command::Reindex(_)
            | Command::Logs(_)
            | Command::Capture(_)
            | Command::Replay(_) => "warn",
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
        Command::Api(args) => api::run(*args).await,
        Command::Serve(args) => serve::run(*args).await,
        Command::Worker(args) => worker::run(*args).await,
        Command::Submit(args) => submit::run(args).await,
        Command::Matches(args) => matches::run(args).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Capture(args) => capture::run(args).await,
        Command::Forget(args) => forget::run(*args).await,
        Command::Fsck(args) => fsck::run(args).await,
        Command::Reindex(args) => reindex::run(args).await,
        Command::Replay(args) => replay::run(*args).await,
    }
}
