//! `facerec capture --count N DIR`: saves messages from a queue to files (one per message,
//! body and properties), for replay and for fixtures. Messages stay in the queue unless
//! `--remove` is given.

use super::connection_args::BrokerArgs;
use crate::adapters::amqp::{connect, redacted, text_headers};
use crate::capture::{self, CapturedMessage};
use crate::hash::ImageHash;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
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
    let settings = args.broker.settings(1, 20).map_err(anyhow::Error::msg)?;
    let queue = args.from_queue.clone().unwrap_or_else(|| settings.queue.clone());
    std::fs::create_dir_all(&args.dir)?;
    let conn = connect(&settings.url, "facerec capture", Duration::from_secs(10))
        .await
        .map_err(|e| anyhow::anyhow!("RabbitMQ at {}: {e}", redacted(&settings.url)))?;
    let channel = conn.create_channel().await?;
    // Every message is held unacknowledged until the end, so none is fetched twice.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    while held.len() < args.count {
        match channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await? {
            Some(message) => {
                let d = &message.delivery;
                let headers = text_headers(d.properties.headers().as_ref());
                let captured = CapturedMessage {
                    exchange: d.exchange.as_str().to_owned(),
                    routing_key: d.routing_key.as_str().to_owned(),
                    redelivered: d.redelivered,
                    body: d.data.clone(),
                    headers,
                    content_type: d.properties.content_type().as_ref().map(|s| s.as_str().to_owned()),
                    content_encoding: d.properties.content_encoding().as_ref().map(|s| s.as_str().to_owned()),
                    delivery_mode: *d.properties.delivery_mode(),
                    message_id: d.properties.message_id().as_ref().map(|s| s.as_str().to_owned()),
                    timestamp: *d.properties.timestamp(),
                };
                let tag = ImageHash::of_bytes(&captured.body).as_str()[..12].to_owned();
                let path = args.dir.join(format!("{:06}-{tag}.{}", held.len() + 1, capture::EXTENSION));
                captured.write(&path).map_err(anyhow::Error::msg)?;
                println!("{}", path.display());
                held.push(message.delivery.acker.clone());
            }
            None if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            None => break,
        }
    }
    for acker in &held {
        if args.remove {
            acker.ack(BasicAckOptions::default()).await?;
        } else {
            acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await?;
        }
    }
    let _ = conn.close(200, "done".into()).await;
    eprintln!("captured {} messages from {queue:?}{}", held.len(), if args.remove { " (removed)" } else { "" });
    Ok(())
}
