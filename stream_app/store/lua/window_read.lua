-- finpulse window store: read one entity's snapshot (read-only).
-- KEYS: 1 state hash, 2 bucket hash, 3 seen-id zset (all in the entity's hash-tag slot)
-- ARGV[1]: JSON [max event ms of the batch, bucket ms, window buckets, baseline buckets,
--          [event ids to look up]]
-- Returns JSON [state fields, [bucket, counts, ...], [id, event ms, ...]] (one bulk
-- string: far cheaper to parse client-side than nested replies); the bucket list holds
-- the transition buckets of windows.WindowGeometry.transition_ranges.
local a = cjson.decode(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'ver', 'clock', 'win', 'base', 'det', 'alert')
local buckets = {}
if st[2] then
  local bms, wb, bb = a[2], a[3], a[4]
  local clock = tonumber(st[2])
  local b1 = math.floor(clock / bms)
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
local seen = {}
local ids = a[5]
for i = 1, #ids, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #ids) do chunk[#chunk + 1] = ids[j] end
  local scores = redis.call('ZMSCORE', KEYS[3], unpack(chunk))
  for j = 1, #chunk do
    if scores[j] then
      seen[#seen + 1] = chunk[j]
      seen[#seen + 1] = scores[j]
    end
  end
end
return cjson.encode({st, buckets, seen})
