-- Extend: set a current lease to end `lease` ms from now (server clock).
--
-- KEYS: 1 unacked hash, 2 unacked_index zset
-- ARGV: 1 tag, 2 receive count, 3 lease (ms), 4 visibility timeout (ms)
-- Returns 1, or 0 when the lease was no longer current. The index keeps kombu's meaning (the
-- time the lease counts from), so the score is the new end minus the visibility timeout.
local tag, vt_ms = ARGV[1], tonumber(ARGV[4])
local now = now_ms()
if not current_lease(KEYS[1], KEYS[2], tag, tonumber(ARGV[2]), vt_ms, now) then
  return 0
end
redis.call('ZADD', KEYS[2], 'XX', (now + tonumber(ARGV[3]) - vt_ms) / 1000, tag)
return 1
