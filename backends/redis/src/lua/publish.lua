-- Publish a batch: each message either joins the queue (LPUSH, kombu's publishing end) or waits
-- in the delayed set; a message whose deduplication id was seen within the window is dropped.
--
-- KEYS: 1 queue binding (existence), 2 queue list, 3 delayed zset, 4 publish sequence counter
-- ARGV: 1 key prefix, 2 queue, 3 deduplication window (ms),
--       then per message: envelope tail (the JSON object after its counters), delay (ms),
--       deduplication id ('' for none)
-- Returns the number of messages stored (duplicates excluded).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOQUEUE no such queue')
end
local prefix, queue = ARGV[1], ARGV[2]
local ready = {}
local stored = 0
local now = nil
for i = 4, #ARGV, 3 do
  local dedup = ARGV[i + 2]
  local fresh = true
  if dedup ~= '' then
    fresh = redis.call('SET', prefix .. '_broker.dedup.' .. queue .. '.' .. dedup, '1',
      'NX', 'PX', ARGV[3])
  end
  if fresh then
    local env = '{"x-seq":' .. string.format('%d', redis.call('INCR', KEYS[4]))
      .. ',"x-receives":0,' .. ARGV[i]
    local delay = tonumber(ARGV[i + 1])
    if delay > 0 then
      now = now or now_ms()
      redis.call('ZADD', KEYS[3], now + delay, env)
    else
      ready[#ready + 1] = env
    end
    stored = stored + 1
  end
end
if #ready > 0 then
  redis.call('LPUSH', KEYS[2], unpack(ready))
  redis.call('PUBLISH', prefix .. '_broker.wake', queue)
end
return stored
