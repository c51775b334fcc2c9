-- Apply one batch's bucket deltas for ONE topic and advance its per-partition watermarks,
-- atomically. A part whose first offset is at or below the partition's watermark was already
-- applied (Kafka redelivered it) and changes nothing.
--
-- KEYS[1]      the topic's watermark hash   (<p>:{t:<topic>}:wm)
-- KEYS[2..n]   bucket hashes referenced by index from the payload
-- ARGV[1]      minute bucket TTL seconds
-- ARGV[2]      hour bucket TTL seconds
-- ARGV[3]      JSON: [{"p": "<kafka-topic>:<partition>", "first": int, "last": int,
--                      "b": [[key_index, "m"|"h", start_s, {"field": number, ...}], ...]}, ...]
--              score_sum is a float, every other field an integer (the share fields' probability
--              sums in units of 1/10,000: monitor.prevalence.SCALE, is_float_field)
-- A bucket expires TTL seconds after its START (not after its last write), so memory is
-- bounded by the time span kept, whatever the arrival order (backfills included).
-- returns      {applied_parts, skipped_parts}
local ttl_m = tonumber(ARGV[1])
local ttl_h = tonumber(ARGV[2])
local parts = cjson.decode(ARGV[3])
local now = tonumber(redis.call('TIME')[1])
local applied, skipped = 0, 0
for _, part in ipairs(parts) do
  local cur = redis.call('HGET', KEYS[1], part.p)
  if cur and tonumber(cur) >= part.first then
    skipped = skipped + 1
  else
    for _, b in ipairs(part.b) do
      local key = KEYS[b[1]]
      local expires = b[3] + (b[2] == 'h' and ttl_h or ttl_m)
      if expires > now then  -- a bucket already past its lifetime would be deleted at once: skip it
        for field, value in pairs(b[4]) do
          if field == 'score_sum' then
            redis.call('HINCRBYFLOAT', key, field, string.format('%.17g', value))
          else
            redis.call('HINCRBY', key, field, string.format('%d', value))
          end
        end
        redis.call('EXPIREAT', key, string.format('%d', expires))
      end
    end
    redis.call('HSET', KEYS[1], part.p, string.format('%d', part.last))
    applied = applied + 1
  end
end
redis.call('EXPIRE', KEYS[1], ttl_h)  -- watermarks outlive any redelivery
return {applied, skipped}
