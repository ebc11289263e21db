//! Publishing with publisher confirms: a message counts as sent only once the broker has
//! taken responsibility for it.

use super::AmqpError;
use lapin::Confirmation;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};
use std::time::Duration;

/// Longest wait for the broker's confirm: a broker that never answers (a blocked
/// connection, a partition) must not hold a settlement, and its delivery, forever.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Publishes persistently and waits for the broker's confirm, at most
/// [`CONFIRM_TIMEOUT`]. `mandatory`: an unroutable message is an error, not silently
/// dropped. The channel must be in confirm mode.
///
/// # Errors
/// The channel failed, the broker nacked or did not confirm in time, or (mandatory) no
/// queue took the message.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Result<(), AmqpError> {
    let options = BasicPublishOptions { mandatory, ..BasicPublishOptions::default() };
    let properties = properties.with_delivery_mode(2);
    let publish = async {
        channel
            .basic_publish(exchange.into(), routing_key.into(), options, body, properties)
            .await
            .map_err(AmqpError::channel("publish"))?
            .await
            .map_err(AmqpError::channel("publish confirm"))
    };
    let confirm = tokio::time::timeout(CONFIRM_TIMEOUT, publish).await.map_err(|_| AmqpError::Timeout {
        url: format!("the channel publishing to exchange {exchange:?} with key {routing_key:?}"),
        timeout: CONFIRM_TIMEOUT,
    })??;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(AmqpError::Unroutable {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            reply: returned.reply_text.to_string(),
        }),
        Confirmation::Nack(_) => Err(AmqpError::Nacked),
        Confirmation::NotRequested => Err(AmqpError::NoConfirms),
    }
}
