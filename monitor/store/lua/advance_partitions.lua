-- Advance the per-partition watermarks: the last offset of the last batch applied, whatever
-- the batch's topics. Only forward (a stale writer cannot move one back).
--
-- KEYS[1]      <p>:wm
-- ARGV         partition, offset, partition, offset, ...
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if not cur or tonumber(cur) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
