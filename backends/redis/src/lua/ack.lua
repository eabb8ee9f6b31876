-- Ack: remove deliveries for good, each only while its lease is current.
--
-- KEYS: 1 unacked hash, 2 unacked_index zset
-- ARGV: 1 visibility timeout (ms), then per delivery: tag, receive count (the lease's generation)
-- Returns the number of deliveries whose lease was no longer current (left untouched).
local vt_ms = tonumber(ARGV[1])
local now = now_ms()
local lost = 0
for i = 2, #ARGV, 2 do
  local tag = ARGV[i]
  if current_lease(KEYS[1], KEYS[2], tag, tonumber(ARGV[i + 1]), vt_ms, now) then
    redis.call('HDEL', KEYS[1], tag)
    redis.call('ZREM', KEYS[2], tag)
  else
    lost = lost + 1
  end
end
return lost
