//! Dead-letter records in db 0: `facerec:failed:<hash>`, a hash with `reason` and `at`
//! (Unix seconds), written by the workers when they give up on an image and read by the
//! REST front-end (status `failed`). Outside the seed's databases 1-4, which it never
//! touches; expires after [`KEEP_SECONDS`] so dead letters never pile up.

use super::{RedisIndex, classify, text};
use crate::hash::ImageHash;
use crate::ports::{ImageFailure, IndexError};
use fred::prelude::*;
use fred::types::scripts::Script;

/// How long a failure is remembered: 30 days.
pub(super) const KEEP_SECONDS: u64 = 30 * 24 * 3600;
/// `ARGV`: prefix, hash, reason, time, seconds to keep. Ends in db 0, where it ran.
const RECORD: &str = r#"
local k = ARGV[1] .. 'facerec:failed:' .. ARGV[2]
redis.call('HSET', k, 'reason', ARGV[3], 'at', ARGV[4])
redis.call('EXPIRE', k, tonumber(ARGV[5]))
return 1
"#;

/// Longest reason stored, in bytes (cut at a character boundary).
const MAX_REASON: usize = 2048;

impl RedisIndex {
    fn failure_key(&self, hash: &ImageHash) -> String {
        format!("{}facerec:failed:{hash}", self.settings.key_prefix)
    }

    pub(super) async fn put_failure(&self, hash: &ImageHash, reason: &str) -> Result<(), IndexError> {
        let mut end = reason.len().min(MAX_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // One script: the record never exists without its expiry.
        let args = vec![
            self.prefix(),
            hash.as_str().into(),
            (&reason[..end]).into(),
            at.to_string().into(),
            KEEP_SECONDS.to_string().into(),
        ];
        self.run(&Script::from_lua(RECORD), args).await?;
        Ok(())
    }

    pub(super) async fn get_failure(&self, hash: &ImageHash) -> Result<Option<ImageFailure>, IndexError> {
        let reply: Value = self
            .client
            .custom(fred::cmd!("HMGET"), vec![Value::from(self.failure_key(hash)), "reason".into(), "at".into()])
            .await
            .map_err(classify)?;
        let Value::Array(parts) = reply else { return Ok(None) };
        let reason = parts.first().and_then(text);
        let at = parts.get(1).and_then(text).and_then(|t| t.parse().ok()).unwrap_or(0);
        Ok(reason.map(|reason| ImageFailure { reason, at }))
    }
}
