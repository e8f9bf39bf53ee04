-- finpulse window store: commit one entity's change set (compare-and-set on 'ver').
-- KEYS: 1 state hash, 2 bucket hash, 3 seen-id zset, 4 evidence hash (one hash-tag slot)
-- ARGV: 1 expected version, 2 token, 3 clock ('' = none), 4 window, 5 baseline,
--       6 detector json, 7 firing alert json ('' = none), 8 late +, 9 duplicates +,
--       10 first kept bucket, 11 first evidence bucket, 12 seen cutoff ms, 13 ttl s,
--       14 evidence size, 15 JSON {"b": [[bucket, "delta counts"], ...],
--       "s": [[id, event ms], ...], "e": [[bucket, [[neg_micros, id, headline], ...]], ...]}
-- Returns 1 when applied (or already applied with this token), 0 on a version conflict.
local s, bk, seenk, ek = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ver = tonumber(redis.call('HGET', s, 'ver') or '0')
local expected = tonumber(ARGV[1])
if ver ~= expected then
  if ver == expected + 1 and redis.call('HGET', s, 'tok') == ARGV[2] then return 1 end
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

local change = cjson.decode(ARGV[15])
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
redis.call('ZREMRANGEBYSCORE', seenk, '-inf', '(' .. ARGV[12])

local k = tonumber(ARGV[14])
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

prune(bk, 'blo', tonumber(ARGV[10]))
prune(ek, 'elo', tonumber(ARGV[11]))

redis.call('HSET', s, 'ver', ver + 1, 'tok', ARGV[2], 'win', ARGV[4], 'base', ARGV[5],
  'det', ARGV[6])
if ARGV[3] ~= '' then redis.call('HSET', s, 'clock', ARGV[3]) end
if ARGV[7] ~= '' then redis.call('HSET', s, 'alert', ARGV[7]) else redis.call('HDEL', s, 'alert') end
if ARGV[8] ~= '0' then redis.call('HINCRBY', s, 'late', ARGV[8]) end
if ARGV[9] ~= '0' then redis.call('HINCRBY', s, 'dup', ARGV[9]) end
local ttl = tonumber(ARGV[13])
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
return 1
