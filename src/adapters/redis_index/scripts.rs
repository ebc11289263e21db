//! The Lua scripts behind every index operation. Each runs atomically in Redis and moves
//! between the seed's databases with SELECT; each ends with `SELECT 0` (before Redis 7 a
//! script's SELECT leaked into the calling connection).
//!
//! Every key gets `ARGV[1]` (the key prefix, empty in production) in front.
//! db0 keys: `facerec:faces` (a stream: one entry per stored image, field `hash`: the
//! change log workers follow), `facerec:image:<hash>` (hash: `fingerprint`, `faces`,
//! `status`), `facerec:dist:<hash>` (hash: other image -> smallest face distance).

/// Type checks run before any write: Lua scripts are not rolled back when a command
/// fails half-way, so a script first makes sure no write can fail on a key of the wrong
/// type (written by another program), and refuses with WRONGTYPE before writing anything.
const GUARD: &str = r#"
local function need(db, key, kind)
  redis.call('SELECT', db)
  local t = redis.call('TYPE', key)['ok']
  redis.call('SELECT', 0)
  if t ~= 'none' and t ~= kind then
    error({err = 'WRONGTYPE db ' .. db .. ' key ' .. key .. ' is a ' .. t .. ', the schema needs a ' .. kind})
  end
end
"#;

/// Shared Lua helpers, prepended to the scripts that read the change log.
const PRELUDE: &str = r#"
local function id_parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function id_lt(a, b)
  local ams, aseq = id_parts(a)
  local bms, bseq = id_parts(b)
  return ams < bms or (ams == bms and aseq < bseq)
end
-- Entries after `cursor` and before `stop` (exclusive; nil = no bound), at most `count`,
-- each with the encodings of its image: {last_id, more, gap, hash1, {enc...}, hash2, ...}.
local function changes(p, cursor, stop, count)
  local stream = p .. 'facerec:faces'
  local gap = 0
  if cursor ~= '0-0' then
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
    if #first > 0 and id_lt(cursor, first[1][1]) then gap = 1 end
  end
  local entries = redis.call('XRANGE', stream, '(' .. cursor, '+', 'COUNT', count + 1)
  local out = {cursor, 0, gap}
  local n = 0
  redis.call('SELECT', 3)
  for _, entry in ipairs(entries) do
    if stop ~= nil and not id_lt(entry[1], stop) then break end
    if n == count then out[2] = 1 break end
    n = n + 1
    out[1] = entry[1]
    local fields, hash = entry[2], nil
    for i = 1, #fields, 2 do if fields[i] == 'hash' then hash = fields[i + 1] end end
    if hash ~= nil then
      table.insert(out, hash)
      table.insert(out, redis.call('SMEMBERS', p .. hash))
    end
  end
  redis.call('SELECT', 0)
  return out
end
"#;

/// Stores an image's faces (db 3), logs it to the change stream, and returns the changes
/// since the caller's cursor up to (not including) this image.
/// ARGV: prefix, hash, fingerprint, cursor, stream max length, batch size, encodings...
/// Returns `{own_id, {changes}}`.
const ADD_FACES: &str = r#"
local p, h = ARGV[1], ARGV[2]
need(3, p .. h, 'set')
need(0, p .. 'facerec:image:' .. h, 'hash')
need(0, p .. 'facerec:faces', 'stream')
redis.call('SELECT', 3)
for i = 7, #ARGV, 500 do
  redis.call('SADD', p .. h, unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
redis.call('SELECT', 0)
redis.call('HSET', p .. 'facerec:image:' .. h, 'fingerprint', ARGV[3], 'faces', #ARGV - 6, 'status', 'pending')
local id = redis.call('XADD', p .. 'facerec:faces', 'MAXLEN', '~', ARGV[5], '*', 'hash', h)
return {id, changes(p, ARGV[4], id, tonumber(ARGV[6]))}
"#;

/// The next batch of changes after a cursor. ARGV: prefix, cursor, batch size.
const CHANGES: &str = r#"
return changes(ARGV[1], ARGV[2], nil, tonumber(ARGV[3]))
"#;

/// Records matches both ways (db 4) with distances (db 0), then the name (db 2, db 1):
/// the name becomes visible in the same atomic step as the matches, never before.
/// ARGV: prefix, hash, name, then pairs of (other hash, distance).
const COMMIT: &str = r#"
local p, h, name = ARGV[1], ARGV[2], ARGV[3]
need(4, p .. h, 'set')
need(0, p .. 'facerec:dist:' .. h, 'hash')
for i = 4, #ARGV, 2 do
  need(4, p .. ARGV[i], 'set')
  need(0, p .. 'facerec:dist:' .. ARGV[i], 'hash')
end
need(2, p .. h, 'set')
need(1, p .. name, 'string')
redis.call('SELECT', 4)
for i = 4, #ARGV, 2 do
  redis.call('SADD', p .. h, ARGV[i])
  redis.call('SADD', p .. ARGV[i], h)
end
redis.call('SELECT', 0)
for i = 4, #ARGV, 2 do
  local other, d = ARGV[i], ARGV[i + 1]
  for _, pair in ipairs({{h, other}, {other, h}}) do
    local key = p .. 'facerec:dist:' .. pair[1]
    local old = redis.call('HGET', key, pair[2])
    if not old or tonumber(d) < tonumber(old) then redis.call('HSET', key, pair[2], d) end
  end
end
redis.call('HSET', p .. 'facerec:image:' .. h, 'status', 'done')
redis.call('SELECT', 2)
redis.call('SADD', p .. h, name)
redis.call('SELECT', 1)
redis.call('SET', p .. name, h)
redis.call('SELECT', 0)
return 1
"#;

/// Adds a name to a known image. ARGV: prefix, hash, name.
const ADD_NAME: &str = r#"
local p, h, name = ARGV[1], ARGV[2], ARGV[3]
need(2, p .. h, 'set')
need(1, p .. name, 'string')
redis.call('SELECT', 2)
redis.call('SADD', p .. h, name)
redis.call('SELECT', 1)
redis.call('SET', p .. name, h)
redis.call('SELECT', 0)
return 1
"#;

/// Whether db 2 has names for the image (its last write happened). ARGV: prefix, hash.
pub(super) const IS_KNOWN: &str = r#"
redis.call('SELECT', 2)
local n = redis.call('EXISTS', ARGV[1] .. ARGV[2])
redis.call('SELECT', 0)
return n
"#;

/// The image a name points to (db 1). ARGV: prefix, name.
pub(super) const HASH_OF: &str = r#"
redis.call('SELECT', 1)
local h = redis.call('GET', ARGV[1] .. ARGV[2])
redis.call('SELECT', 0)
return h
"#;

/// Everything about one image. ARGV: prefix, hash.
/// Returns `{names, encodings, matches, distances (flat field/value), fingerprint}`.
pub(super) const IMAGE: &str = r#"
local p, h = ARGV[1], ARGV[2]
redis.call('SELECT', 2)
local names = redis.call('SMEMBERS', p .. h)
redis.call('SELECT', 3)
local faces = redis.call('SMEMBERS', p .. h)
redis.call('SELECT', 4)
local matches = redis.call('SMEMBERS', p .. h)
redis.call('SELECT', 0)
local dist = redis.call('HGETALL', p .. 'facerec:dist:' .. h)
local fp = redis.call('HGET', p .. 'facerec:image:' .. h, 'fingerprint')
return {names, faces, matches, dist, fp}
"#;

/// One page of db 3 for the start-up load. ARGV: prefix, scan cursor, page size.
/// Returns `{next_cursor, hash1, {enc...}, ...}`.
pub(super) const LOAD_PAGE: &str = r#"
local p = ARGV[1]
redis.call('SELECT', 3)
local page = redis.call('SCAN', ARGV[2], 'MATCH', p .. '*', 'COUNT', ARGV[3])
local out = {page[1]}
for _, key in ipairs(page[2]) do
  if redis.call('TYPE', key)['ok'] == 'set' then
    table.insert(out, string.sub(key, #p + 1))
    table.insert(out, redis.call('SMEMBERS', key))
  end
end
redis.call('SELECT', 0)
return out
"#;

/// The newest change-log id, or `0-0`. ARGV: prefix.
pub(super) const LAST_ID: &str = r#"
local last = redis.call('XREVRANGE', ARGV[1] .. 'facerec:faces', '+', '-', 'COUNT', 1)
if #last == 0 then return '0-0' end
return last[1][1]
"#;

/// ADD_FACES with its helpers.
pub(super) fn add_faces() -> String {
    format!("{GUARD}{PRELUDE}{ADD_FACES}")
}

/// COMMIT with its type checks.
pub(super) fn commit() -> String {
    format!("{GUARD}{COMMIT}")
}

/// ADD_NAME with its type checks.
pub(super) fn add_name() -> String {
    format!("{GUARD}{ADD_NAME}")
}

/// CHANGES with its helpers.
pub(super) fn changes() -> String {
    format!("{PRELUDE}{CHANGES}")
}
