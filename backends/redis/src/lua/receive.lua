-- Receive: move due delayed messages in, restore expired leases (of every queue), then take up
-- to `max` messages from the consuming end and lease them, all in one atomic step.
--
-- KEYS: 1 queue binding (existence), 2 queue list, 3 unacked hash, 4 unacked_index zset,
--       5 delayed zset of the queue, 6 publish sequence counter
-- ARGV: 1 key prefix, 2 queue, 3 max, 4 visibility timeout (ms), 5 max receives,
--       6 reason for exhausted messages (JSON string), 7 dead-letter queue suffix
-- Returns {server time (ms), next event (ms, -1 for none), tag, entry, tag, entry...}, each
-- entry kombu's `[envelope,"<queue>","<queue>"]` as stored in the unacked hash (the caller
-- strips the brackets and names: returning the envelope alone would cost one more copy of it);
-- the next event, computed only when nothing was taken, is when
-- a delayed message of this queue falls due or the first lease ends, whichever is sooner.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOQUEUE no such queue')
end
local prefix, queue = ARGV[1], ARGV[2]
local vt_ms, max_receives = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()

local due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 100)
for _, env in ipairs(due) do
  redis.call('ZREM', KEYS[5], env)
  local _, receives = parse_meta(env)
  redis.call('LPUSH', KEYS[2], with_meta(env, redis.call('INCR', KEYS[6]), receives))
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', (now - vt_ms) / 1000,
  'LIMIT', 0, 100)
for _, tag in ipairs(expired) do
  local entry = redis.call('HGET', KEYS[3], tag)
  redis.call('ZREM', KEYS[4], tag)
  if entry then
    redis.call('HDEL', KEYS[3], tag)
    local env, owner = parse_entry(entry)
    if env then
      give_back(prefix, owner, ARGV[7], env, 'requeue', 0, now, max_receives, ARGV[6], ARGV[6])
    end
  end
end

local out = {now, -1}
local taken = redis.call('RPOP', KEYS[2], tonumber(ARGV[3]))
if taken then
  local score = now / 1000
  for _, env in ipairs(taken) do
    local seq, receives = parse_meta(env)
    local tag = tag_of(env)
    local entry = leased_entry(env, seq or 0, receives + 1, queue)
    redis.call('HSET', KEYS[3], tag, entry)
    redis.call('ZADD', KEYS[4], score, tag)
    out[#out + 1] = tag
    out[#out + 1] = entry
  end
end

if #out == 2 then
  local next_event = -1
  local first_due = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  if first_due[2] then
    next_event = tonumber(first_due[2])
  end
  local first_lease = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  if first_lease[2] then
    local ends = tonumber(first_lease[2]) * 1000 + vt_ms
    if next_event < 0 or ends < next_event then
      next_event = ends
    end
  end
  out[2] = math.floor(next_event)
end
return out
