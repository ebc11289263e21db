//! Declaring exchanges and queues without fighting existing ones.
//!
//! Each is declared with our flags; if the broker refuses because it already exists with
//! other flags (a producer written for the seed may have declared it differently), it is
//! checked *passively* and used as it is. A refused declare closes its channel, so each
//! attempt runs on a channel of its own.

use super::{AmqpSettings, QueueType};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ExchangeKind};

/// Declares exchange `toWorker`, queue `toWorker` bound with its key, and the dead-letter
/// queue, of the work queue's type: on a cluster a classic dead-letter queue lives on one
/// node, and with that node down every dead-lettering (so all consuming) would stop.
///
/// # Errors
/// The broker refused a declaration.
pub async fn declare_work(conn: &Connection, s: &AmqpSettings) -> Result<(), lapin::Error> {
    ensure_exchange(conn, &s.exchange, ExchangeKind::Direct, true).await?;
    let mut args = FieldTable::default();
    let mut dead_args = FieldTable::default();
    if s.queue_type == QueueType::Quorum {
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        dead_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        args.insert("x-delivery-limit".into(), AMQPValue::LongInt(s.delivery_limit as i32));
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(s.dead_letter_queue.as_str().into()));
    }
    ensure_queue(conn, &s.queue, args).await?;
    ensure_queue(conn, &s.dead_letter_queue, dead_args).await?;
    let channel = conn.create_channel().await?;
    channel
        .queue_bind(
            s.queue.as_str().into(),
            s.exchange.as_str().into(),
            s.routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Makes sure an exchange exists.
///
/// # Errors
/// The broker refused the declaration.
pub async fn ensure_exchange(
    conn: &Connection,
    name: &str,
    kind: ExchangeKind,
    durable: bool,
) -> Result<(), lapin::Error> {
    if name.is_empty() {
        return Ok(()); // the default exchange always exists
    }
    let channel = conn.create_channel().await?;
    let options = ExchangeDeclareOptions { durable, ..ExchangeDeclareOptions::default() };
    match channel.exchange_declare(name.into(), kind.clone(), options, FieldTable::default()).await {
        Ok(()) => {
            let _ = channel.close(200, "declared".into()).await;
            Ok(())
        }
        Err(refused) => {
            let probe = conn.create_channel().await?;
            let passive = ExchangeDeclareOptions { passive: true, ..ExchangeDeclareOptions::default() };
            probe.exchange_declare(name.into(), kind, passive, FieldTable::default()).await.map_err(|_| refused)?;
            tracing::info!(exchange = name, "exchange exists with other settings; using it as it is");
            let _ = probe.close(200, "checked".into()).await;
            Ok(())
        }
    }
}

/// Makes sure a durable queue exists (created with `args` if missing).
///
/// # Errors
/// The broker refused the declaration.
pub async fn ensure_queue(conn: &Connection, name: &str, args: FieldTable) -> Result<(), lapin::Error> {
    let channel = conn.create_channel().await?;
    match channel.queue_declare(name.into(), QueueDeclareOptions::durable(), args).await {
        Ok(_) => {
            let _ = channel.close(200, "declared".into()).await;
            Ok(())
        }
        Err(refused) => {
            let probe = conn.create_channel().await?;
            let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
            probe.queue_declare(name.into(), passive, FieldTable::default()).await.map_err(|_| refused)?;
            tracing::info!(queue = name, "queue exists with other settings; using it as it is");
            let _ = probe.close(200, "checked".into()).await;
            Ok(())
        }
    }
}
