-- The duplicate-id claim as it was until 2026-12-01: two arguments in and one reply out per id,
-- three Redis calls per id. Kept as the reference of tests/integration/test_claim_ids.py and the
-- baseline of bench/claim_ids.py; the worker runs monitor/store/lua/claim_ids.lua.
--
-- Claim post ids against duplicates: an id seen in the current or the previous time slice was
-- counted before. Ids are 8-byte digests in one hash per slice (fields, not keys: about a
-- third of the memory of a key per id), so the guard's memory is rate x window, bounded.
--
-- KEYS[1]      the current slice   (<p>:{seen}:<slice>)
-- KEYS[2]      the previous slice  (<p>:{seen}:<slice - 1>)
-- ARGV[1]      unix second at which the current slice expires
-- ARGV[2..]    digest, origin, digest, origin, ...
-- returns      for each id: "" when it is new (claimed now) or was claimed by the same origin
--              (a redelivery), else the origin that claimed it first
local out = {}
for i = 2, #ARGV, 2 do
  local digest, origin = ARGV[i], ARGV[i + 1]
  local prev = redis.call('HGET', KEYS[1], digest) or redis.call('HGET', KEYS[2], digest)
  if not prev then
    redis.call('HSET', KEYS[1], digest, origin)
    prev = origin
  end
  out[#out + 1] = (prev == origin) and '' or prev
end
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return out
