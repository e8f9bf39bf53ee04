-- finpulse window store v2: commit one entity's change set (compare-and-set on 'ver').
-- KEYS (one hash-tag slot): 1 state hash, 2 bucket hash, 3 seen hash, 4 seen index zset,
--   5 novelty hash, 6 novelty index zset, 7 evidence hash, 8 alert hash, 9 alert index zset,
--   10 recent headlines list
-- ARGV[1]: JSON {ver: expected version, tok: token, clock: ms or -1, first: ms or -1,
--   win, base: counts, det: detector states JSON, firing: firing alerts JSON or "",
--   late, dup: counter increments, keep: first kept bucket, ekeep: first evidence bucket,
--   cut: seen cutoff ms, ncut: novelty cutoff ms, nmax: novelty keys kept, ttl: s,
--   k: evidence size, b: [[bucket, "delta counts"], ...], s: [[id, entry, ms], ...],
--   n: [[probe, story, ms], ...], e: [[bucket, order, [[neg, pos, ms, id, ...], ...]], ...],
--   a: [[alert id, record JSON, ms], ...], akeep: alert records kept,
--   h: [headline JSON, ...] oldest first, hkeep: headlines kept}
-- Returns 1 when applied (or already applied with this token), 0 on a version conflict.
local s, bk, seen, seenx, nov, novx, ek, ak, akx, hk = unpack(KEYS)
local change = cjson.decode(ARGV[1])
local ver = tonumber(redis.call('HGET', s, 'ver') or '0')
local expected = change.ver
if ver ~= expected then
  if ver == expected + 1 and redis.call('HGET', s, 'tok') == change.tok then return 1 end
  return 0
end

local function addn(a, b)
  local x, y = {}, {}
  if a then for v in string.gmatch(a, '[^,]+') do x[#x + 1] = tonumber(v) end end
  for v in string.gmatch(b, '[^,]+') do y[#y + 1] = tonumber(v) end
  for i = 1, #y do y[i] = string.format('%d', (x[i] or 0) + y[i]) end
  return table.concat(y, ',')
end

-- delete, from hash `key`, the fields of buckets below `cut`; `lofield` in the state hash
-- remembers the lowest bucket written, `fields(b)` names the fields of bucket b
local function prune(key, lofield, cut, fields)
  local lo = tonumber(redis.call('HGET', s, lofield) or '')
  if lo and lo < cut then
    if cut - lo <= 4096 then
      for i = lo, cut - 1, 150 do
        local chunk = {}
        for b = i, math.min(i + 149, cut - 1) do
          for _, f in ipairs(fields(b)) do chunk[#chunk + 1] = f end
        end
        redis.call('HDEL', key, unpack(chunk))
      end
    else
      for _, f in ipairs(redis.call('HKEYS', key)) do
        local b = tonumber(string.match(f, '(-?%d+)$'))
        if b and b < cut then redis.call('HDEL', key, f) end
      end
    end
    redis.call('HSET', s, lofield, string.format('%d', cut))
  end
end

local function lower(lofield, b)
  local lo = tonumber(redis.call('HGET', s, lofield) or '')
  if not lo or b < lo then redis.call('HSET', s, lofield, string.format('%d', b)) end
end

-- remove members of index zset `idx` (and their fields of hash `h`) scored at or below `max`
local function expire(h, idx, max)
  while true do
    local old = redis.call('ZRANGEBYSCORE', idx, '-inf', max, 'LIMIT', 0, 500)
    if #old == 0 then return end
    redis.call('HDEL', h, unpack(old))
    redis.call('ZREM', idx, unpack(old))
  end
end

-- keep at most `n` members of index zset `idx`, dropping the lowest (score, member) first
local function cap(h, idx, n)
  local over = redis.call('ZCARD', idx) - n
  while over > 0 do
    local popped = redis.call('ZPOPMIN', idx, math.min(over, 500))
    local names = {}
    for i = 1, #popped, 2 do names[#names + 1] = popped[i] end
    redis.call('HDEL', h, unpack(names))
    over = over - #names
  end
end

local function put(h, idx, rows)
  for i = 1, #rows, 200 do
    local hargs, zargs = {}, {}
    for j = i, math.min(i + 199, #rows) do
      local r = rows[j]
      hargs[#hargs + 1] = r[1]
      hargs[#hargs + 1] = r[2]
      zargs[#zargs + 1] = string.format('%d', r[3])
      zargs[#zargs + 1] = r[1]
    end
    redis.call('HSET', h, unpack(hargs))
    redis.call('ZADD', idx, unpack(zargs))
  end
end

local minb = nil
for _, bd in ipairs(change.b) do
  local b = string.format('%d', bd[1])
  redis.call('HSET', bk, b, addn(redis.call('HGET', bk, b), bd[2]))
  if not minb or bd[1] < minb then minb = bd[1] end
end
if minb then lower('blo', minb) end

put(seen, seenx, change.s)
expire(seen, seenx, '(' .. string.format('%d', change.cut))

put(nov, novx, change.n)
expire(nov, novx, string.format('%d', change.ncut))
cap(nov, novx, change.nmax)

-- evidence: per bucket and order, the k first by the order's key (desc), then id (asc)
local key_of = {neg = 1, pos = 2, recent = 3}
local k = change.k
for _, be in ipairs(change.e) do
  local field = be[2] .. ':' .. string.format('%d', be[1])
  local at = key_of[be[2]]
  local cur = redis.call('HGET', ek, field)
  local items = cur and cjson.decode(cur) or {}
  for _, it in ipairs(be[3]) do items[#items + 1] = it end
  table.sort(items, function(x, y)
    if x[at] ~= y[at] then return x[at] > y[at] end
    return x[4] < y[4]
  end)
  local top = {}
  for i = 1, math.min(k, #items) do top[i] = items[i] end
  redis.call('HSET', ek, field, cjson.encode(top))
  lower('elo', be[1])
end

prune(bk, 'blo', change.keep, function(b) return {string.format('%d', b)} end)
prune(ek, 'elo', change.ekeep, function(b)
  local n = string.format('%d', b)
  return {'neg:' .. n, 'pos:' .. n, 'recent:' .. n}
end)

put(ak, akx, change.a)
cap(ak, akx, change.akeep)

if #change.h > 0 then
  redis.call('LPUSH', hk, unpack(change.h))
  redis.call('LTRIM', hk, 0, change.hkeep - 1)
end

redis.call('HSET', s, 'ver', string.format('%d', ver + 1), 'tok', change.tok,
  'win', change.win, 'base', change.base, 'det', change.det)
if change.clock >= 0 then redis.call('HSET', s, 'clock', string.format('%d', change.clock)) end
if change.first >= 0 then redis.call('HSET', s, 'first', string.format('%d', change.first)) end
if change.firing ~= '' then
  redis.call('HSET', s, 'firing', change.firing)
else
  redis.call('HDEL', s, 'firing')
end
if change.late > 0 then redis.call('HINCRBY', s, 'late', change.late) end
if change.dup > 0 then redis.call('HINCRBY', s, 'dup', change.dup) end
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, change.ttl) end
return 1
