//! `facerec logs [PATTERN]`: prints the `logs` exchange live, like the seed's listener.

use super::connection_args::BrokerArgs;
use crate::adapters::amqp::topology::ensure_exchange;
use crate::adapters::amqp::{connect, redacted};
use crate::log_lines::escape;
use futures::StreamExt as _;
use lapin::ExchangeKind;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use std::time::Duration;

/// Print worker progress lines as they are published.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Binding pattern, e.g. `*.worker.info` or `worker-7.#` [default: every line]
    #[arg(default_value = "#")]
    pub pattern: String,
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerArgs,
}

/// Runs until interrupted.
pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let settings = args.broker.settings(1, 20).map_err(anyhow::Error::msg)?;
    let conn = connect(&settings.url, "facerec logs", Duration::from_secs(10))
        .await
        .map_err(|e| anyhow::anyhow!("RabbitMQ at {}: {e}", redacted(&settings.url)))?;
    ensure_exchange(&conn, &settings.logs_exchange, ExchangeKind::Topic, settings.logs_durable).await?;
    let channel = conn.create_channel().await?;
    let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
    let queue = channel.queue_declare("".into(), options, FieldTable::default()).await?;
    let name = queue.name().as_str().to_owned();
    channel
        .queue_bind(
            name.as_str().into(),
            settings.logs_exchange.as_str().into(),
            args.pattern.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
    let mut consumer =
        channel.basic_consume(name.as_str().into(), "facerec-logs".into(), no_ack, FieldTable::default()).await?;
    eprintln!("listening on exchange {:?} for {:?} (Ctrl-C to stop)", settings.logs_exchange, args.pattern);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            next = consumer.next() => match next {
                Some(Ok(d)) => println!("{}: {}", d.routing_key, escape(&String::from_utf8_lossy(&d.data))),
                Some(Err(e)) => anyhow::bail!("connection lost: {e}"),
                None => break,
            },
        }
    }
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}
