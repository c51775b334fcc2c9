-- Claim post ids against duplicates: an id seen in the current or the previous time slice was
-- counted before. Ids are 8-byte digests in one hash per slice (fields, not keys: about a
-- third of the memory of a key per id), so the guard's memory is rate x window, bounded.
--
-- KEYS[1]      the current slice   (<p>:{seen}:<slice>)
-- KEYS[2]      the previous slice  (<p>:{seen}:<slice - 1>)
-- ARGV[1]      unix second at which the current slice expires
-- ARGV[2]      the ids' 8-byte digests, concatenated
-- ARGV[3]      their records' origins ("<kafka-topic>:<partition>:<offset>"), one per line
-- returns      one line per id: "" when it is new (claimed now) or was claimed by the same
--              origin (a redelivery), else the origin that claimed it first
--
-- Three arguments and one string back, not two arguments and one reply per id: packing and
-- parsing 4,096 arguments was most of a 2,048-post batch's claim time, in the worker's
-- Python. Both slices are read with one HMGET per chunk and the new ids written with one HSET
-- per chunk. An id twice in one call: the first claims it, the second sees that claim.
local CHUNK = 1000  -- ids per HMGET / HSET: well under Lua's unpack limit
local blob = ARGV[2]
local n = #blob / 8
local origins = {}
for o in string.gmatch(ARGV[3] .. '\n', '(.-)\n') do
  origins[#origins + 1] = o
end
if #origins ~= n then
  return redis.error_reply('claim_ids: ' .. n .. ' digests but ' .. #origins .. ' origins')
end
local out = {}
local fresh = {}
for from = 0, n - 1, CHUNK do
  local to = math.min(from + CHUNK, n) - 1
  local digests = {}
  for i = from, to do
    digests[#digests + 1] = string.sub(blob, 8 * i + 1, 8 * i + 8)
  end
  local cur = redis.call('HMGET', KEYS[1], unpack(digests))
  local old = redis.call('HMGET', KEYS[2], unpack(digests))
  local new = {}
  for j, digest in ipairs(digests) do
    local origin = origins[from + j]
    local prev = cur[j] or old[j] or fresh[digest]
    if not prev then
      fresh[digest] = origin
      new[#new + 1] = digest
      new[#new + 1] = origin
      prev = origin
    end
    out[#out + 1] = (prev == origin) and '' or prev
  end
  if #new > 0 then
    redis.call('HSET', KEYS[1], unpack(new))
  end
end
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return table.concat(out, '\n')
