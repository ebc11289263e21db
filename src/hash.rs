//! Image identity: the `hash` a producer sends, or the SHA-256 of the image bytes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Longest hash accepted. Real content hashes are 32-128 hex characters.
pub const MAX_HASH_LEN: usize = 256;

/// The key of an image in every database: an opaque, validated string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageHash(String);

/// Why a string is not a usable image hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHash {
    /// Zero characters.
    #[error("hash is empty")]
    Empty,
    /// Longer than [`MAX_HASH_LEN`].
    #[error("hash is {0} bytes long, the limit is {MAX_HASH_LEN}")]
    TooLong(usize),
    /// Whitespace or control characters would make keys ambiguous in logs and shells.
    #[error("hash contains whitespace or a control character")]
    BadCharacter,
}

impl ImageHash {
    /// Validates a producer-supplied hash.
    pub fn parse(s: &str) -> Result<Self, InvalidHash> {
        if s.is_empty() {
            return Err(InvalidHash::Empty);
        }
        if s.len() > MAX_HASH_LEN {
            return Err(InvalidHash::TooLong(s.len()));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidHash::BadCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    /// Lowercase hex SHA-256 of `bytes`: the hash of an image whose producer sent none.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// The hash as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ImageHash {
    type Error = InvalidHash;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ImageHash> for String {
    fn from(h: ImageHash) -> String {
        h.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            ImageHash::of_bytes(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn rejects_unusable_hashes() {
        assert_eq!(ImageHash::parse(""), Err(InvalidHash::Empty));
        assert_eq!(ImageHash::parse("a b"), Err(InvalidHash::BadCharacter));
        assert_eq!(ImageHash::parse("a\nb"), Err(InvalidHash::BadCharacter));
        assert_eq!(ImageHash::parse(&"a".repeat(300)), Err(InvalidHash::TooLong(300)));
        assert!(ImageHash::parse("3f2a").is_ok());
    }
}
