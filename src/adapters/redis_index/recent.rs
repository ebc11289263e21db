//! Stored images newest first, for `GET /api/v1/images`: the change log (`facerec:faces`,
//! one entry per stored image) read backwards, keeping complete images (db 2 names exist:
//! erased and half-stored ones drop out) once each. The cursor is a log entry id, so pages
//! stay stable while images are added. Covers what the log holds (it is trimmed to
//! `log_max_len`, ~200k images by default).

use super::{RedisIndex, array, text};
use crate::hash::ImageHash;
use crate::ports::{ImagePage, IndexError};
use fred::types::scripts::Script;

/// `ARGV`: prefix, cursor ('' = newest), limit, most entries to read. Returns
/// `{next cursor or '', {hash...}}`. Bounded work per call: a page may come back short
/// with a cursor when many entries in a row are repeats or incomplete.
const RECENT: &str = r#"
local p, cursor, limit, budget = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local stream = p .. 'facerec:faces'
if redis.call('TYPE', stream)['ok'] ~= 'stream' then return {'', {}} end
local out, seen, last, scanned = {}, {}, nil, 0
local top = '+'
if cursor ~= '' then top = '(' .. cursor end
while #out < limit and scanned < budget do
  local batch = redis.call('XREVRANGE', stream, top, '-', 'COUNT', 200)
  for _, e in ipairs(batch) do
    last = e[1]
    scanned = scanned + 1
    local f, h, op = e[2], nil, nil
    for i = 1, #f, 2 do
      if f[i] == 'hash' then h = f[i + 1] elseif f[i] == 'op' then op = f[i + 1] end
    end
    if h and not op and not seen[h] then
      seen[h] = true
      redis.call('SELECT', 2)
      local done = redis.call('EXISTS', p .. h)
      redis.call('SELECT', 0)
      if done == 1 then table.insert(out, h) end
    end
    if #out >= limit or scanned >= budget then break end
  end
  if #batch < 200 then
    if #out < limit and scanned < budget then last = nil end
    break
  end
  top = '(' .. last
end
return {last or '', out}
"#;

impl RedisIndex {
    pub(super) async fn recent_images(&self, limit: usize, cursor: Option<&str>) -> Result<ImagePage, IndexError> {
        let cursor = cursor.unwrap_or("");
        let valid = cursor.is_empty()
            || cursor.split_once('-').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            });
        if !valid || cursor.len() > 48 {
            return Err(IndexError::Rejected(format!("bad cursor {cursor:?}")));
        }
        let budget = (limit * 10).max(1000);
        let args = vec![self.prefix(), cursor.into(), limit.to_string().into(), budget.to_string().into()];
        let reply = self.run(&Script::from_lua(RECENT), args).await?;
        let mut parts = array(reply)?.into_iter();
        let next = parts.next().as_ref().and_then(text).filter(|n| !n.is_empty());
        let hashes = array(parts.next().unwrap_or(fred::types::Value::Null))?
            .iter()
            .filter_map(|v| ImageHash::parse(&text(v)?).ok())
            .collect();
        Ok(ImagePage { hashes, next })
    }
}
