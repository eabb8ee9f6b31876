-- Count a queue's messages by state, in one atomic step.
--
-- KEYS: 1 queue binding (existence), 2 queue list, 3 unacked hash, 4 delayed zset of the queue
-- ARGV: 1 queue
-- Returns {ready, in flight, delayed}. In flight are the unacked hash's entries whose routing
-- key (the last element of kombu's `[envelope, exchange, routing_key]`) is the queue: a scan
-- of every lease of every queue under the prefix, fine for an operator, not for a hot path.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOQUEUE no such queue')
end
local tail = ',"' .. ARGV[1] .. '"]'
local in_flight = 0
for _, entry in ipairs(redis.call('HVALS', KEYS[3])) do
  if string.sub(entry, -#tail) == tail then
    in_flight = in_flight + 1
  end
end
return {redis.call('LLEN', KEYS[2]), in_flight, redis.call('ZCARD', KEYS[4])}
