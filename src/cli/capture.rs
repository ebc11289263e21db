//! `facerec capture --count N DIR`: saves messages from a queue to files (one per message,
//! body and properties), for replay and for fixtures. Messages stay in the queue unless
//! `--remove` is given.

use super::connection_args::BrokerArgs;
use crate::app;
use crate::capture;
use crate::hash::ImageHash;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Save messages from a queue to files.
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// Folder to write `*.fcap` files into (created if missing).
    pub dir: PathBuf,
    /// Messages to save at most.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Queue to read [default: the work queue]
    #[arg(long = "from")]
    pub from_queue: Option<String>,
    /// Remove the saved messages from the queue (default: put them back).
    #[arg(long)]
    pub remove: bool,
    /// Seconds to wait for more messages when the queue runs empty.
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerArgs,
}

/// Runs the command.
pub async fn run(args: CaptureArgs) -> anyhow::Result<()> {
    let settings = args.broker.settings(&app::hostname(None), 1, 20)?;
    let queue = args.from_queue.clone().unwrap_or_else(|| settings.queue.clone());
    std::fs::create_dir_all(&args.dir)?;
    let mut reader = app::queue_reader(&settings, &queue).await?;
    let mut saved = 0usize;
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    while saved < args.count {
        match reader.get().await? {
            Some(captured) => {
                let tag = ImageHash::of_bytes(&captured.body).as_str()[..12].to_owned();
                saved += 1;
                let path = args.dir.join(format!("{saved:06}-{tag}.{}", capture::EXTENSION));
                captured.write(&path)?;
                println!("{}", path.display());
            }
            None if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            None => break,
        }
    }
    reader.finish(args.remove).await?;
    eprintln!("captured {saved} messages from {queue:?}{}", if args.remove { " (removed)" } else { "" });
    Ok(())
}
