-- Keep a bounded sample of one topic's posts: at most ARGV[1] per minute, so the texts kept
-- grow with topics and time, never with traffic.
--
-- KEYS[1]      the topic's sample index      (<p>:{t:<topic>}:recent, ZSET id -> event ms)
-- KEYS[2..n]   the minute sample hashes      (<p>:{t:<topic>}:x:<minute_start_ms>)
-- ARGV[1]      posts kept per minute
-- ARGV[2]      text TTL seconds (counted from the minute's start)
-- ARGV[3]      now, ms
-- ARGV[4]      JSON: [[key_index, minute_start_s, post_id, ts_ms, "<json of the text>"], ...]
-- returns      how many posts joined the sample
local per_minute = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local now_ms = tonumber(ARGV[3])
local kept = 0
for _, p in ipairs(cjson.decode(ARGV[4])) do
  local key = KEYS[p[1]]
  local expires = p[2] + ttl
  if expires * 1000 > now_ms and redis.call('HLEN', key) < per_minute then
    if redis.call('HSETNX', key, p[3], p[5]) == 1 then
      redis.call('ZADD', KEYS[1], p[4], p[3])
      kept = kept + 1
    end
    redis.call('EXPIREAT', key, string.format('%d', expires))
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now_ms - ttl * 1000))
redis.call('EXPIRE', KEYS[1], ttl)
return kept
