-- finpulse window store v2: read one entity's snapshot (read-only).
-- KEYS: 1 state hash, 2 bucket hash, 3 seen hash, 4 novelty hash (one hash-tag slot)
-- ARGV[1]: JSON [max event ms of the batch, bucket ms, window buckets, baseline buckets,
--          [event ids to look up], [novelty probe keys to look up]]
-- Returns JSON [state fields, [bucket, counts, ...], clock bucket counts,
--               [id, seen entry, ...], [probe, "ms:story", ...]] as one bulk string (far
-- cheaper to parse client-side than nested replies); the bucket list holds the transition
-- buckets of windows.WindowGeometry.transition_ranges.
local a = cjson.decode(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'ver', 'clock', 'first', 'win', 'base', 'det', 'firing')
local buckets = {}
local clock_bucket = false
if st[2] then
  local bms, wb, bb = a[2], a[3], a[4]
  local clock = tonumber(st[2])
  local b1 = math.floor(clock / bms)
  clock_bucket = redis.call('HGET', KEYS[2], string.format('%d', b1))
  local b2 = math.floor(math.max(a[1], clock) / bms)
  local top = math.min(b2, b1 + bb)
  if top > b1 then
    local lo1, hi1 = b1 - wb + 1, top - wb
    local fields = {}
    for b = lo1, hi1 do fields[#fields + 1] = b end
    for b = b1 - bb + 1, top - bb do
      if b < lo1 or b > hi1 then fields[#fields + 1] = b end
    end
    for i = 1, #fields, 500 do
      local chunk = {}
      for j = i, math.min(i + 499, #fields) do chunk[#chunk + 1] = string.format('%d', fields[j]) end
      local vals = redis.call('HMGET', KEYS[2], unpack(chunk))
      for j = 1, #chunk do
        if vals[j] then
          buckets[#buckets + 1] = chunk[j]
          buckets[#buckets + 1] = vals[j]
        end
      end
    end
  end
end
local function lookup(key, names)
  local found = {}
  for i = 1, #names, 500 do
    local chunk = {}
    for j = i, math.min(i + 499, #names) do chunk[#chunk + 1] = names[j] end
    local vals = redis.call('HMGET', key, unpack(chunk))
    for j = 1, #chunk do
      if vals[j] then
        found[#found + 1] = chunk[j]
        found[#found + 1] = vals[j]
      end
    end
  end
  return found
end
return cjson.encode({st, buckets, clock_bucket, lookup(KEYS[3], a[5]), lookup(KEYS[4], a[6])})
