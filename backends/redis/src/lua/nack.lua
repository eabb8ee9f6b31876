-- Nack: give a leased delivery back ('requeue' to its place, 'delay' after ms, 'dead' to the
-- dead-letter queue), only while its lease is current.
--
-- KEYS: 1 unacked hash, 2 unacked_index zset
-- ARGV: 1 key prefix, 2 tag, 3 receive count, 4 visibility timeout (ms), 5 how, 6 delay (ms),
--       7 max receives, 8 reason for exhausted messages (JSON), 9 dead-letter reason (JSON),
--       10 dead-letter queue suffix
-- Returns 1, or 0 when the lease was no longer current.
local tag, vt_ms = ARGV[2], tonumber(ARGV[4])
local now = now_ms()
local entry = current_lease(KEYS[1], KEYS[2], tag, tonumber(ARGV[3]), vt_ms, now)
if not entry then
  return 0
end
redis.call('HDEL', KEYS[1], tag)
redis.call('ZREM', KEYS[2], tag)
local env, queue = parse_entry(entry)
if env then
  give_back(ARGV[1], queue, ARGV[10], env, ARGV[5], tonumber(ARGV[6]), now, tonumber(ARGV[7]),
    ARGV[8], ARGV[9])
end
return 1
