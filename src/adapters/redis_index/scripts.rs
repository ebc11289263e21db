//! The Lua scripts behind every index operation. Each runs atomically in Redis and moves
//! between the seed's databases with SELECT; each ends with `SELECT 0` (before Redis 7 a
//! script's SELECT leaked into the calling connection).
//!
//! Every key gets `ARGV[1]` (the key prefix, empty in production) in front.
//! db0 keys: `facerec:faces` (a stream: one entry per stored image, field `hash`: the
//! change log workers follow), `facerec:image:<hash>` (hash: `fingerprint`, `faces`,
//! `status`), `facerec:dist:<hash>` (hash: other image -> smallest face distance),
//! `facerec:layout:<hash>` (string: JSON size and face boxes) and `facerec:thumb:<hash>`
//! (string: a JPEG), both written by the store script with the faces.

/// Type checks run before any write: Lua scripts are not rolled back when a command
/// fails half-way, so a script first makes sure no write can fail on a key of the wrong
/// type (written by another program). `need` refuses with WRONGTYPE (permanent: the
/// message is dead-lettered) before anything is written; `foreign` only reports, for keys
/// of *other* images, which are then left alone (docs/PROTOCOL.md: wrong-typed keys).
const GUARD: &str = r#"
local function foreign(db, key, kind)
  redis.call('SELECT', db)
  local t = redis.call('TYPE', key)['ok']
  redis.call('SELECT', 0)
  if t ~= 'none' and t ~= kind then
    return 'db ' .. db .. ' key ' .. key .. ' is a ' .. t .. ', the schema needs a ' .. kind
  end
  return nil
end
local function need(db, key, kind)
  local why = foreign(db, key, kind)
  if why then error({err = 'WRONGTYPE ' .. why}) end
end
-- Every key an image's own writes touch, in every database.
local function own(p, h, name)
  need(1, p .. name, 'string')
  need(2, p .. h, 'set')
  need(3, p .. h, 'set')
  need(4, p .. h, 'set')
  need(0, p .. 'facerec:image:' .. h, 'hash')
  need(0, p .. 'facerec:dist:' .. h, 'hash')
  need(0, p .. 'facerec:layout:' .. h, 'string')
  need(0, p .. 'facerec:thumb:' .. h, 'string')
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
-- each with the encodings of its image: {last_id, more, gap, skipped, hash1, {enc...}, ...}.
-- A db 3 key that is not a set (written by another program) is skipped and counted, as
-- the start-up load skips it: one foreign key must not stop every later image.
local function changes(p, cursor, stop, count)
  local stream = p .. 'facerec:faces'
  local gap = 0
  -- The caller's position must still be in the log: trimmed away, or lost with a primary
  -- that died before its replica had it (the cache then holds images this server never
  -- had), the caller cannot catch up entry by entry and reloads from db 3.
  if cursor ~= '0-0' and #redis.call('XRANGE', stream, cursor, cursor) == 0 then gap = 1 end
  local entries = redis.call('XRANGE', stream, '(' .. cursor, '+', 'COUNT', count + 1)
  local out = {cursor, 0, gap, 0}
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
      local t = redis.call('TYPE', p .. hash)['ok']
      if t == 'set' or t == 'none' then
        table.insert(out, hash)
        table.insert(out, redis.call('SMEMBERS', p .. hash))
      else
        out[4] = out[4] + 1
      end
    end
  end
  redis.call('SELECT', 0)
  return out
end
"#;

/// Stores an image's faces (db 3), its layout and thumbnail (db 0), logs it to the change
/// stream, and returns the changes since the caller's cursor up to (not including) this
/// image. Every key of this image that any later write touches is type-checked first, so a
/// foreign-typed one refuses the image before anything of it is written. An empty layout
/// or thumbnail deletes the key (none made), so what is stored is always this image's.
/// ARGV: prefix, hash, name, fingerprint, cursor, stream max length, batch size, layout
/// JSON, thumbnail, encodings...
/// Returns `{own_id, {changes}}`.
const ADD_FACES: &str = r#"
local p, h = ARGV[1], ARGV[2]
own(p, h, ARGV[3])
need(0, p .. 'facerec:faces', 'stream')
redis.call('SELECT', 3)
for i = 10, #ARGV, 500 do
  redis.call('SADD', p .. h, unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
redis.call('SELECT', 0)
redis.call('HSET', p .. 'facerec:image:' .. h, 'fingerprint', ARGV[4], 'faces', #ARGV - 9, 'status', 'pending')
for _, kv in ipairs({{'facerec:layout:', ARGV[8]}, {'facerec:thumb:', ARGV[9]}}) do
  if kv[2] == '' then redis.call('DEL', p .. kv[1] .. h) else redis.call('SET', p .. kv[1] .. h, kv[2]) end
end
local id = redis.call('XADD', p .. 'facerec:faces', 'MAXLEN', '~', ARGV[6], '*', 'hash', h)
return {id, changes(p, ARGV[5], id, tonumber(ARGV[7]))}
"#;

/// The next batch of changes after a cursor. ARGV: prefix, cursor, batch size.
const CHANGES: &str = r#"
return changes(ARGV[1], ARGV[2], nil, tonumber(ARGV[3]))
"#;

/// Records matches both ways (db 4) with distances (db 0), then the name (db 2, db 1):
/// the name becomes visible in the same atomic step as the matches, never before.
/// Every type is checked before the first write. A foreign-typed key of this image
/// refuses it (WRONGTYPE); a match whose own db 4 or distance key is foreign-typed, or
/// whose faces are gone from db 3 (rolled back, or removed by another program), is not
/// linked either way and is returned instead. An image key that vanished means a
/// concurrent ROLLBACK of this same image: refused with a transient error, so the
/// message is tried again from the start.
/// ARGV: prefix, hash, name, then pairs of (other hash, distance).
/// Returns the matches left out: `{hash1, reason1, hash2, reason2, ...}`.
const COMMIT: &str = r#"
local p, h, name = ARGV[1], ARGV[2], ARGV[3]
own(p, h, name)
if redis.call('EXISTS', p .. 'facerec:image:' .. h) == 0 then
  error({err = 'ROLLEDBACK the faces of ' .. h .. ' were removed while it was matched; store it again'})
end
local linked, skipped = {}, {}
for i = 4, #ARGV, 2 do
  local o = ARGV[i]
  local why = foreign(4, p .. o, 'set') or foreign(0, p .. 'facerec:dist:' .. o, 'hash')
  if not why then
    redis.call('SELECT', 3)
    if redis.call('TYPE', p .. o)['ok'] ~= 'set' then
      why = 'db 3 key ' .. p .. o .. ' holds no faces (rolled back or removed)'
    end
    redis.call('SELECT', 0)
  end
  if why then
    table.insert(skipped, o)
    table.insert(skipped, why)
  else
    table.insert(linked, i)
  end
end
redis.call('SELECT', 4)
for _, i in ipairs(linked) do
  redis.call('SADD', p .. h, ARGV[i])
  redis.call('SADD', p .. ARGV[i], h)
end
redis.call('SELECT', 0)
for _, i in ipairs(linked) do
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
return skipped
"#;

/// Undoes an ADD_FACES whose COMMIT did not happen (the failure path of `add_image`), so
/// no half-stored image stays behind for later images to link to: removes its faces
/// (db 3), its layout and thumbnail, its matches both ways (db 4, distances) that other images' COMMITs added while
/// it was pending, and its db 0 image key. Only an image still `pending` and without
/// names is touched, and only keys of the schema's types. Its change-log entry stays:
/// caches keep its faces, and COMMIT never links to an image without db 3 faces.
/// ARGV: prefix, hash. Returns 1 when something was rolled back.
pub(super) const ROLLBACK: &str = r#"
local p, h = ARGV[1], ARGV[2]
local img, dist = p .. 'facerec:image:' .. h, p .. 'facerec:dist:' .. h
local function is(db, key, kind)
  redis.call('SELECT', db)
  local yes = redis.call('TYPE', key)['ok'] == kind
  redis.call('SELECT', 0)
  return yes
end
if is(2, p .. h, 'set') or not is(0, img, 'hash') or redis.call('HGET', img, 'status') ~= 'pending' then
  return 0
end
local links = {}
redis.call('SELECT', 4)
if redis.call('TYPE', p .. h)['ok'] == 'set' then
  links = redis.call('SMEMBERS', p .. h)
  redis.call('DEL', p .. h)
end
for _, o in ipairs(links) do
  redis.call('SELECT', 4)
  if redis.call('TYPE', p .. o)['ok'] == 'set' then redis.call('SREM', p .. o, h) end
  redis.call('SELECT', 0)
  if redis.call('TYPE', p .. 'facerec:dist:' .. o)['ok'] == 'hash' then redis.call('HDEL', p .. 'facerec:dist:' .. o, h) end
end
redis.call('SELECT', 3)
if redis.call('TYPE', p .. h)['ok'] == 'set' then redis.call('DEL', p .. h) end
redis.call('SELECT', 0)
if redis.call('TYPE', dist)['ok'] == 'hash' then redis.call('DEL', dist) end
for _, kind in ipairs({'facerec:layout:', 'facerec:thumb:'}) do
  if redis.call('TYPE', p .. kind .. h)['ok'] == 'string' then redis.call('DEL', p .. kind .. h) end
end
redis.call('DEL', img)
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

/// Whether db 2 has names for the image (its last write happened). A db 2 key of another
/// type (another program's) is no names: the image goes on to ADD_FACES, which refuses it
/// with a reason naming that key. ARGV: prefix, hash.
pub(super) const IS_KNOWN: &str = r#"
redis.call('SELECT', 2)
local t = redis.call('TYPE', ARGV[1] .. ARGV[2])['ok']
redis.call('SELECT', 0)
if t == 'set' then return 1 end
return 0
"#;

/// The image a name points to (db 1). ARGV: prefix, name.
pub(super) const HASH_OF: &str = r#"
redis.call('SELECT', 1)
local h = redis.call('GET', ARGV[1] .. ARGV[2])
redis.call('SELECT', 0)
return h
"#;

/// Everything about one image. ARGV: prefix, hash.
/// Returns `{names, encodings, matches, distances (flat field/value), fingerprint, layout
/// JSON or false, 1 if a thumbnail is stored}`. A layout or thumbnail key of another type
/// reads as absent.
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
local layout, thumb = false, 0
if redis.call('TYPE', p .. 'facerec:layout:' .. h)['ok'] == 'string' then
  layout = redis.call('GET', p .. 'facerec:layout:' .. h)
end
if redis.call('TYPE', p .. 'facerec:thumb:' .. h)['ok'] == 'string' then thumb = 1 end
return {names, faces, matches, dist, fp, layout, thumb}
"#;

/// An image's thumbnail, or nil. ARGV: prefix, hash.
pub(super) const THUMBNAIL: &str = r#"
local key = ARGV[1] .. 'facerec:thumb:' .. ARGV[2]
if redis.call('TYPE', key)['ok'] ~= 'string' then return false end
return redis.call('GET', key)
"#;

/// Every name of every image sharing a face with one (the course's `/match`), in one
/// round trip. Keys of another type (another program's) count as absent. ARGV: prefix,
/// hash. Returns the names, possibly repeated.
pub(super) const MATCH_NAMES: &str = r#"
local p, h = ARGV[1], ARGV[2]
redis.call('SELECT', 4)
local matches = {}
if redis.call('TYPE', p .. h)['ok'] == 'set' then matches = redis.call('SMEMBERS', p .. h) end
redis.call('SELECT', 2)
local names = {}
for _, m in ipairs(matches) do
  if redis.call('TYPE', p .. m)['ok'] == 'set' then
    for _, n in ipairs(redis.call('SMEMBERS', p .. m)) do table.insert(names, n) end
  end
end
redis.call('SELECT', 0)
return names
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
