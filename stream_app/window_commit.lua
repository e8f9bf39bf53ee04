-- finpulse window store: commit one entity's change set (compare-and-set on 'ver').
-- KEYS: 1 state hash, 2 bucket hash, 3 seen-id zset, 4 evidence hash (one hash-tag slot)
-- ARGV: 1 expected version, 2 token, 3 clock ('' = none), 4 window, 5 baseline,
--       6 detector json, 7 firing alert json ('' = none), 8 late +, 9 duplicates +,
--       10 first kept bucket, 11 first evidence bucket, 12 seen cutoff ms, 13 ttl s,
--       14 evidence size, then: n, n x (bucket, delta counts), m, m x (id, event ms),
--       e, e x (bucket, evidence json [[neg_micros, id, headline], ...])
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

local pos = 15
local n = tonumber(ARGV[pos]); pos = pos + 1
local minb = nil
for _ = 1, n do
  local b, d = ARGV[pos], ARGV[pos + 1]
  pos = pos + 2
  redis.call('HSET', bk, b, add4(redis.call('HGET', bk, b), d))
  local nb = tonumber(b)
  if not minb or nb < minb then minb = nb end
end
if minb then lower('blo', minb) end

local m = tonumber(ARGV[pos]); pos = pos + 1
for _ = 1, m do
  redis.call('ZADD', seenk, ARGV[pos + 1], ARGV[pos])
  pos = pos + 2
end
redis.call('ZREMRANGEBYSCORE', seenk, '-inf', '(' .. ARGV[12])

local k = tonumber(ARGV[14])
local function before(x, y)
  if x[1] ~= y[1] then return x[1] > y[1] end
  return x[2] < y[2]
end
local e = tonumber(ARGV[pos]); pos = pos + 1
for _ = 1, e do
  local b, add = ARGV[pos], cjson.decode(ARGV[pos + 1])
  pos = pos + 2
  local cur = redis.call('HGET', ek, b)
  local items = cur and cjson.decode(cur) or {}
  for _, it in ipairs(add) do items[#items + 1] = it end
  table.sort(items, before)
  local top = {}
  for i = 1, math.min(k, #items) do top[i] = items[i] end
  redis.call('HSET', ek, b, cjson.encode(top))
  lower('elo', tonumber(b))
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
