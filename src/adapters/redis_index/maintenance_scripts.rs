//! Lua scripts for erasing images, and the guard that keeps an erased image from coming
//! back through a name that was in flight when it was erased. Kept apart from `scripts.rs`
//! (the pipeline's scripts), whose commit already refuses an image whose faces were
//! removed while it was matched, and skips matches with images whose faces are gone.
//!
//! Every key gets `ARGV[1]` (the key prefix) in front, as in `scripts.rs`.

/// Prepended to the add-name script (ARGV: prefix, hash, name): a name is only added to
/// an image that still exists (db 2), so an erase between "is known" and "add name" wins.
pub(super) const ADD_NAME_ERASED_GUARD: &str = r#"
redis.call('SELECT', 2)
local alive = redis.call('EXISTS', ARGV[1] .. ARGV[2])
redis.call('SELECT', 0)
if alive == 0 then return 0 end
"#;

/// Erases images. ARGV: prefix, change-log max length, hashes...
/// For each hash: the names in db 1 that still point to it, its keys in db 2, 3 and 4, its
/// hash in every linked image's db 4 set and distance hash (linked: its own db 4 set and
/// distance hash together, so a one-sided link is found too), its record, distance hash,
/// layout and thumbnail in db 0; then one change-log entry `hash=<h> op=forget`, which makes every worker drop
/// the faces from its cache before it next compares. Older change-log entries naming it
/// are deleted. Keys of an unexpected type are deleted, never read, so no command fails
/// half-way. Returns `{{hash, found, {names}, faces, linked}, ...}`.
pub(super) const FORGET: &str = r#"
local p, maxlen = ARGV[1], ARGV[2]
local stream = p .. 'facerec:faces'
local st = redis.call('TYPE', stream)['ok']
if st ~= 'none' and st ~= 'stream' then
  return redis.error_reply('WRONGTYPE db 0 key ' .. stream .. ' is a ' .. st .. ', the schema needs a stream')
end
local function typed(db, key, kind)
  redis.call('SELECT', db)
  return redis.call('TYPE', key)['ok'] == kind
end
local out, gone = {}, {}
for i = 3, #ARGV do
  local h = ARGV[i]
  local names, removed = {}, {}
  if typed(2, p .. h, 'set') then names = redis.call('SMEMBERS', p .. h) end
  for _, n in ipairs(names) do
    if typed(1, p .. n, 'string') and redis.call('GET', p .. n) == h then
      redis.call('DEL', p .. n)
      table.insert(removed, n)
    end
  end
  local faces = 0
  if typed(3, p .. h, 'set') then faces = redis.call('SCARD', p .. h) end
  local linked, seen = {}, {}
  if typed(4, p .. h, 'set') then linked = redis.call('SMEMBERS', p .. h) end
  local matches = #linked
  for _, o in ipairs(linked) do seen[o] = true end
  local dist = p .. 'facerec:dist:' .. h
  if typed(0, dist, 'hash') then
    for _, o in ipairs(redis.call('HKEYS', dist)) do
      if not seen[o] then seen[o] = true table.insert(linked, o) end
    end
  end
  for _, o in ipairs(linked) do
    if typed(4, p .. o, 'set') then redis.call('SREM', p .. o, h) end
    if typed(0, p .. 'facerec:dist:' .. o, 'hash') then redis.call('HDEL', p .. 'facerec:dist:' .. o, h) end
  end
  local deleted = #removed
  for db = 2, 4 do
    redis.call('SELECT', db)
    deleted = deleted + redis.call('DEL', p .. h)
  end
  redis.call('SELECT', 0)
  deleted = deleted + redis.call('DEL', p .. 'facerec:image:' .. h, dist, p .. 'facerec:layout:' .. h, p .. 'facerec:thumb:' .. h)
  -- A dead-letter record (facerec:failed:, written by the workers) goes too; not counted.
  redis.call('DEL', p .. 'facerec:failed:' .. h)
  local found = 0
  if deleted > 0 then
    found = 1
    gone[h] = true
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'hash', h, 'op', 'forget')
  end
  table.insert(out, {h, found, removed, faces, matches})
end
redis.call('SELECT', 0)
if next(gone) ~= nil then
  local cursor = '-'
  while true do
    local page = redis.call('XRANGE', stream, cursor, '+', 'COUNT', 1000)
    if #page == 0 then break end
    for _, entry in ipairs(page) do
      local fields, hash, op = entry[2], nil, nil
      for j = 1, #fields, 2 do
        if fields[j] == 'hash' then hash = fields[j + 1] elseif fields[j] == 'op' then op = fields[j + 1] end
      end
      if hash ~= nil and gone[hash] and op ~= 'forget' then redis.call('XDEL', stream, entry[1]) end
    end
    cursor = '(' .. page[#page][1]
  end
end
return out
"#;

/// One page of one database for `fsck` and `reindex`. ARGV: prefix, db, scan cursor, page
/// size, and for db 0 the kind of key (`image`, `layout`, `thumb` or `dist`).
/// db 1: `{next, key, value, ...}`; dbs 2-4: `{next, key, {members}, ...}` (sets only);
/// db 0: `{next, hash, value, ...}`: the `faces` field of `facerec:image:*` records, the
/// JSON of `facerec:layout:*`, '' for `facerec:thumb:*` (only their presence is checked),
/// `{field, value, ...}` of `facerec:dist:*` (hashes only).
pub(super) const SNAPSHOT_PAGE: &str = r#"
local p, db, kind = ARGV[1], tonumber(ARGV[2]), ARGV[5] or 'image'
redis.call('SELECT', db)
local pattern = p .. '*'
local stem = 'facerec:' .. kind .. ':'
if db == 0 then pattern = p .. stem .. '*' end
local page = redis.call('SCAN', ARGV[3], 'MATCH', pattern, 'COUNT', ARGV[4])
local out = {page[1]}
for _, key in ipairs(page[2]) do
  local t = redis.call('TYPE', key)['ok']
  if db == 1 and t == 'string' then
    table.insert(out, string.sub(key, #p + 1))
    table.insert(out, redis.call('GET', key))
  elseif db >= 2 and t == 'set' then
    table.insert(out, string.sub(key, #p + 1))
    table.insert(out, redis.call('SMEMBERS', key))
  elseif db == 0 and kind == 'image' and t == 'hash' then
    table.insert(out, string.sub(key, #p + #stem + 1))
    table.insert(out, redis.call('HGET', key, 'faces') or '')
  elseif db == 0 and kind == 'layout' and t == 'string' then
    table.insert(out, string.sub(key, #p + #stem + 1))
    table.insert(out, redis.call('GET', key))
  elseif db == 0 and kind == 'thumb' and t == 'string' then
    table.insert(out, string.sub(key, #p + #stem + 1))
    table.insert(out, '')
  elseif db == 0 and kind == 'dist' and t == 'hash' then
    table.insert(out, string.sub(key, #p + #stem + 1))
    table.insert(out, redis.call('HGETALL', key))
  end
end
redis.call('SELECT', 0)
return out
"#;

/// Applies fsck fixes. ARGV: prefix, then triples (op, a, b): `delname` name -,
/// `setname` name hash, `link` a b, `unlink` a b, `delrecord` hash -, `dellayout` hash -,
/// `delthumb` hash -.
pub(super) const FIX: &str = r#"
local p = ARGV[1]
for i = 2, #ARGV, 3 do
  local op, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'delname' then redis.call('SELECT', 1) redis.call('DEL', p .. a)
  elseif op == 'setname' then redis.call('SELECT', 1) redis.call('SET', p .. a, b)
  elseif op == 'link' then redis.call('SELECT', 4) redis.call('SADD', p .. a, b)
  elseif op == 'unlink' then redis.call('SELECT', 4) redis.call('SREM', p .. a, b)
  elseif op == 'delrecord' then redis.call('SELECT', 0) redis.call('DEL', p .. 'facerec:image:' .. a)
  elseif op == 'dellayout' then redis.call('SELECT', 0) redis.call('DEL', p .. 'facerec:layout:' .. a)
  elseif op == 'delthumb' then redis.call('SELECT', 0) redis.call('DEL', p .. 'facerec:thumb:' .. a)
  end
end
redis.call('SELECT', 0)
return 1
"#;

/// Writes one batch of a reindex (`adapters/redis_index/tolerance.rs`). ARGV: prefix, the
/// tolerance to record as `facerec:tolerance` ('' except on the last batch), then
/// quadruples (op, a, b, value): `link` a b - and `unlink` a b - (db 4 set of a),
/// `dist` a b d and `undist` a b - (`facerec:dist:<a>` field b).
/// A key of another type than the schema's is left alone and named in the reply. A `link`
/// or `dist` between images of which one has no faces in db 3 any more (erased while the
/// reindex ran) is not written, so a reindex never brings back an erased image.
/// Returns `{{foreign key descriptions}, writes left out because an image is gone}`.
pub(super) const REINDEX_WRITE: &str = r#"
local p, tolerance = ARGV[1], ARGV[2]
local foreign, described, alive, gone = {}, {}, {}, 0
local function check(db, key, want)
  local id = db .. ':' .. key
  if foreign[id] == nil then
    redis.call('SELECT', db)
    local t = redis.call('TYPE', key)['ok']
    foreign[id] = t ~= 'none' and t ~= want
    if foreign[id] then table.insert(described, 'db ' .. db .. ' key ' .. key .. ' is a ' .. t) end
  end
  return not foreign[id]
end
local function has_faces(h)
  if alive[h] == nil then
    redis.call('SELECT', 3)
    alive[h] = redis.call('TYPE', p .. h)['ok'] == 'set'
  end
  return alive[h]
end
for i = 3, #ARGV, 4 do
  local op, a = ARGV[i], ARGV[i + 1]
  if op == 'link' or op == 'unlink' then check(4, p .. a, 'set') else check(0, p .. 'facerec:dist:' .. a, 'hash') end
end
for i = 3, #ARGV, 4 do
  local op, a, b, v = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local adds = op == 'link' or op == 'dist'
  if adds and not (has_faces(a) and has_faces(b)) then
    gone = gone + 1
  elseif op == 'link' or op == 'unlink' then
    if not foreign['4:' .. p .. a] then
      redis.call('SELECT', 4)
      if op == 'link' then redis.call('SADD', p .. a, b) else redis.call('SREM', p .. a, b) end
    end
  else
    local key = p .. 'facerec:dist:' .. a
    if not foreign['0:' .. key] then
      redis.call('SELECT', 0)
      if op == 'dist' then redis.call('HSET', key, b, v) else redis.call('HDEL', key, b) end
    end
  end
end
redis.call('SELECT', 0)
if tolerance ~= '' then redis.call('SET', p .. 'facerec:tolerance', tolerance) end
return {described, gone}
"#;

/// The tolerance db 4 was built with, as `facerec reindex` recorded it (nil when none, or
/// when the key is not a string). ARGV: prefix.
pub(super) const RECORDED_TOLERANCE: &str = r#"
local key = ARGV[1] .. 'facerec:tolerance'
if redis.call('TYPE', key)['ok'] ~= 'string' then return false end
return redis.call('GET', key)
"#;

/// A worker says it is running (`facerec:workers`, host -> JSON
/// `{"tolerance":T,"expires":<Unix seconds, Redis's clock>}`) and drops entries that
/// expired (workers that died without a clean stop). ARGV: prefix, host, tolerance,
/// lifetime in seconds. Returns the recorded tolerance, or nil.
pub(super) const REGISTER_WORKER: &str = r#"
local p, host, tolerance, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = p .. 'facerec:workers'
local t = redis.call('TYPE', key)['ok']
if t ~= 'none' and t ~= 'hash' then
  return redis.error_reply('WRONGTYPE db 0 key ' .. key .. ' is a ' .. t .. ', the schema needs a hash')
end
local now = tonumber(redis.call('TIME')[1])
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  local ok, entry = pcall(cjson.decode, all[i + 1])
  if not ok or type(entry) ~= 'table' or tonumber(entry.expires) == nil or tonumber(entry.expires) < now then
    redis.call('HDEL', key, all[i])
  end
end
redis.call('HSET', key, host, '{"tolerance":' .. tolerance .. ',"expires":' .. string.format('%d', now + ttl) .. '}')
local recorded = p .. 'facerec:tolerance'
if redis.call('TYPE', recorded)['ok'] ~= 'string' then return false end
return redis.call('GET', recorded)
"#;

/// A worker's clean stop: its entry leaves `facerec:workers`. ARGV: prefix, host.
pub(super) const UNREGISTER_WORKER: &str = r#"
local key = ARGV[1] .. 'facerec:workers'
if redis.call('TYPE', key)['ok'] ~= 'hash' then return 0 end
return redis.call('HDEL', key, ARGV[2])
"#;

/// The worker registry as stored, with Redis's clock: `{now, host, json, host, json, ...}`
/// (expired entries included: the caller compares). ARGV: prefix.
pub(super) const WORKERS: &str = r#"
local key = ARGV[1] .. 'facerec:workers'
local out = {tostring(redis.call('TIME')[1])}
if redis.call('TYPE', key)['ok'] ~= 'hash' then return out end
for _, v in ipairs(redis.call('HGETALL', key)) do table.insert(out, v) end
return out
"#;
