-- finpulse window store: commit one entity's change set (compare-and-set on 'ver').
-- KEYS: 1 state hash, 2 bucket hash, 3 seen-id zset, 4 evidence hash (one hash-tag slot)
-- ARGV[1]: JSON {ver: expected version, tok: token, clock: ms or -1, win, base: counts,
--   det: detector json, alert: firing alert json or "", late, dup: counter increments,
--   keep: first kept bucket, ekeep: first evidence bucket, cut: seen cutoff ms, ttl: s,
--   k: evidence size, b: [[bucket, "delta counts"], ...], s: [[id, event ms], ...],
--   e: [[bucket, [[neg_micros, id, headline], ...]], ...]}
-- Returns 1 when applied (or already applied with this token), 0 on a version conflict.
local s, bk, seenk, ek = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local change = cjson.decode(ARGV[1])
local ver = tonumber(redis.call('HGET', s, 'ver') or '0')
local expected = change.ver
if ver ~= expected then
  if ver == expected + 1 and redis.call('HGET', s, 'tok') == change.tok then return 1 end
  return 0
end

local function add4(a, b)
  local x, i = {0, 0, 0, 0}, 1
  if a then for v in string.gmatch(a, '[^,]+') do x[i] = tonumber(v); i = i + 1 end end
  i = 1
  for v in string.gmatch(b, '[^,]+') do x[i] = x[i] + tonumber(v); i = i + 1 end
  return string.format('%d,%d,%d,%d', x[1], x[2], x[3], x[4])
end

-- delete fields below `cut` of hash `key`; `lofield` in the state hash remembers the lowest
local function prune(key, lofield, cut)
  local lo = tonumber(redis.call('HGET', s, lofield) or '')
  if lo and lo < cut then
    if cut - lo <= 4096 then
      for i = lo, cut - 1, 500 do
        local chunk = {}
        for b = i, math.min(i + 499, cut - 1) do chunk[#chunk + 1] = string.format('%d', b) end
        redis.call('HDEL', key, unpack(chunk))
      end
    else
      for _, f in ipairs(redis.call('HKEYS', key)) do
        if tonumber(f) < cut then redis.call('HDEL', key, f) end
      end
    end
    redis.call('HSET', s, lofield, string.format('%d', cut))
  end
end

local function lower(lofield, b)
  local lo = tonumber(redis.call('HGET', s, lofield) or '')
  if not lo or b < lo then redis.call('HSET', s, lofield, string.format('%d', b)) end
end

local minb = nil
for _, bd in ipairs(change.b) do
  local b = string.format('%d', bd[1])
  redis.call('HSET', bk, b, add4(redis.call('HGET', bk, b), bd[2]))
  if not minb or bd[1] < minb then minb = bd[1] end
end
if minb then lower('blo', minb) end

for i = 1, #change.s, 200 do
  local zargs = {}
  for j = i, math.min(i + 199, #change.s) do
    zargs[#zargs + 1] = string.format('%d', change.s[j][2])
    zargs[#zargs + 1] = change.s[j][1]
  end
  redis.call('ZADD', seenk, unpack(zargs))
end
redis.call('ZREMRANGEBYSCORE', seenk, '-inf', '(' .. string.format('%d', change.cut))

local k = change.k
local function before(x, y)
  if x[1] ~= y[1] then return x[1] > y[1] end
  return x[2] < y[2]
end
for _, be in ipairs(change.e) do
  local b = string.format('%d', be[1])
  local cur = redis.call('HGET', ek, b)
  local items = cur and cjson.decode(cur) or {}
  for _, it in ipairs(be[2]) do items[#items + 1] = it end
  table.sort(items, before)
  local top = {}
  for i = 1, math.min(k, #items) do top[i] = items[i] end
  redis.call('HSET', ek, b, cjson.encode(top))
  lower('elo', be[1])
end

prune(bk, 'blo', change.keep)
prune(ek, 'elo', change.ekeep)

redis.call('HSET', s, 'ver', string.format('%d', ver + 1), 'tok', change.tok,
  'win', change.win, 'base', change.base, 'det', change.det)
if change.clock >= 0 then redis.call('HSET', s, 'clock', string.format('%d', change.clock)) end
if change.alert ~= '' then
  redis.call('HSET', s, 'alert', change.alert)
else
  redis.call('HDEL', s, 'alert')
end
if change.late > 0 then redis.call('HINCRBY', s, 'late', change.late) end
if change.dup > 0 then redis.call('HINCRBY', s, 'dup', change.dup) end
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, change.ttl) end
return 1
