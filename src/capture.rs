//! Captured messages: one AMQP delivery per file (body and properties), bincode-encoded.
//! `facerec capture` writes them; `facerec replay` and the tests read them back.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// File name extension of a captured message.
pub const EXTENSION: &str = "fcap";

const MAGIC: &[u8; 8] = b"FCAPv1\0\0";

/// A captured-message file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Cannot read or write the file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Does not start with the captured-message header.
    #[error("not a captured message (wrong header)")]
    WrongHeader,
    /// The body does not decode.
    #[error("corrupt captured message: {0}")]
    Corrupt(#[source] bincode::error::DecodeError),
    /// A file's content is not a captured message.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<CaptureError>,
    },
}

/// One delivery as it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedMessage {
    /// Exchange it was published to (empty: the default exchange).
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Whether the broker had delivered it before.
    pub redelivered: bool,
    /// The body, unchanged.
    pub body: Vec<u8>,
    /// Headers with text values (`name`, `hash`, ...).
    pub headers: BTreeMap<String, String>,
    /// `content_type` property.
    pub content_type: Option<String>,
    /// `content_encoding` property.
    pub content_encoding: Option<String>,
    /// `delivery_mode` property (2 = persistent).
    pub delivery_mode: Option<u8>,
    /// `message_id` property.
    pub message_id: Option<String>,
    /// `timestamp` property, seconds since the epoch.
    pub timestamp: Option<u64>,
}

impl CapturedMessage {
    /// A message with only a body and headers (for tests and tools).
    pub fn new(body: Vec<u8>, headers: BTreeMap<String, String>) -> Self {
        Self {
            exchange: String::new(),
            routing_key: String::new(),
            redelivered: false,
            body,
            headers,
            content_type: None,
            content_encoding: None,
            delivery_mode: None,
            message_id: None,
            timestamp: None,
        }
    }

    /// Serialises to the file form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        bincode::serde::encode_into_std_write(self, &mut out, bincode::config::standard())
            .expect("writing to a Vec cannot fail");
        out
    }

    /// Parses the file form.
    ///
    /// # Errors
    /// Wrong magic or a corrupt body.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CaptureError> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(CaptureError::WrongHeader)?;
        bincode::serde::decode_from_slice(rest, bincode::config::standard())
            .map(|(m, _)| m)
            .map_err(CaptureError::Corrupt)
    }

    /// Reads a file.
    ///
    /// # Errors
    /// Unreadable or corrupt file.
    pub fn read(path: &Path) -> Result<Self, CaptureError> {
        let bytes = std::fs::read(path).map_err(|source| CaptureError::Io { path: path.to_owned(), source })?;
        Self::from_bytes(&bytes).map_err(|e| CaptureError::File { path: path.to_owned(), source: Box::new(e) })
    }

    /// Writes a file.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), CaptureError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| CaptureError::Io { path: path.to_owned(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_property() {
        let mut m = CapturedMessage::new(vec![0, 1, 2, 255], BTreeMap::from([("name".into(), "x".into())]));
        m.exchange = "toWorker".into();
        m.delivery_mode = Some(2);
        m.timestamp = Some(1_700_000_000);
        assert_eq!(CapturedMessage::from_bytes(&m.to_bytes()).unwrap(), m);
        assert!(CapturedMessage::from_bytes(b"garbage").is_err());
    }
}
