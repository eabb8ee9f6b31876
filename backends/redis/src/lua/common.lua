-- Helpers shared by every script of the Redis broker (prepended to each one).
--
-- An envelope is kombu's JSON message object. The broker keeps two counters of its own as the
-- first two keys of that object, `{"x-seq":S,"x-receives":C,...}`, so that a script can read
-- and rewrite them without decoding the JSON (kombu ignores keys it does not know). `x-seq` is
-- the message's place in publish order; `x-receives` counts receives. An envelope written by
-- another producer has neither until the broker first hands it out.

-- seq (nil when unknown), receives, and the position where the rest of the object starts.
local function parse_meta(env)
  local head = string.sub(env, 1, 96)
  local s, c, pos = string.match(head,
    '^{%s*"x%-seq"%s*:%s*(%d+)%s*,%s*"x%-receives"%s*:%s*(%d+)%s*,()')
  if s then
    return tonumber(s), tonumber(c), pos
  end
  return nil, 0, string.match(head, '^%s*{()')
end

-- The envelope with its counters set to seq and receives.
local function with_meta(env, seq, receives)
  local _, _, pos = parse_meta(env)
  if not pos then
    return env
  end
  local rest = string.sub(env, pos)
  local sep = ','
  if string.match(rest, '^%s*}') then
    sep = ''
  end
  return '{"x-seq":' .. string.format('%d', seq) .. ',"x-receives":'
    .. string.format('%d', receives) .. sep .. rest
end

-- The delivery tag (kombu's `properties.delivery_tag`): the message id and the unacked key.
local function tag_of(env)
  local tag = string.match(env, '"delivery_tag"%s*:%s*"([^"\\]+)"')
  if tag then
    return tag
  end
  local _, _, pos = parse_meta(env)
  return redis.sha1hex(string.sub(env, pos or 1))
end

-- The `,"queue","queue"]` that closes kombu's unacked entry of an envelope of `queue`.
local function entry_suffix(queue)
  return ',"' .. queue .. '","' .. queue .. '"]'
end

-- kombu's unacked entry of `env` (the JSON array [envelope, exchange, routing_key]) with the
-- envelope's counters set to seq and receives. An envelope may be tens of megabytes and every
-- Lua string made of it is a full copy, so the entry is made in one concatenation.
local function leased_entry(env, seq, receives, queue)
  local _, _, pos = parse_meta(env)
  if not pos then
    return '[' .. env .. entry_suffix(queue)
  end
  local rest = string.sub(env, pos)
  local sep = ','
  if string.match(rest, '^%s*}') then
    sep = ''
  end
  return '[{"x-seq":' .. string.format('%d', seq) .. ',"x-receives":'
    .. string.format('%d', receives) .. sep .. rest .. entry_suffix(queue)
end

-- The envelope and the queue (routing key) of an unacked entry. The exchange and routing key
-- are looked for in the entry's last 2 KiB first: a pattern that has to reach them from the
-- front steps through the whole envelope one character at a time.
local function parse_entry(entry)
  local closing = '(),%s*"([^"]*)"%s*,%s*"([^"]*)"%s*%]%s*$'
  local open = string.match(entry, '^%s*%[%s*()')
  if open then
    local close, _, rk = string.match(entry, closing, math.max(open, #entry - 2048))
    if close then
      return string.sub(entry, open, close - 1), rk
    end
  end
  local env, _, rk = string.match(entry,
    '^%s*%[%s*(.*),%s*"([^"]*)"%s*,%s*"([^"]*)"%s*%]%s*$')
  return env, rk
end

-- The receive count and lease end (ms) of the delivery `tag` when it is still leased under
-- `receives` at `now_ms`; nil otherwise.
local function current_lease(unacked, index, tag, receives, vt_ms, now_ms)
  local entry = redis.call('HGET', unacked, tag)
  if not entry then
    return nil
  end
  local _, count = parse_meta(string.sub(entry, 2, 128))
  if count ~= receives then
    return nil
  end
  local score = redis.call('ZSCORE', index, tag)
  if not score then
    return nil
  end
  local ends = tonumber(score) * 1000 + vt_ms
  if ends <= now_ms then
    return nil
  end
  return entry
end

-- Adds `field` (a JSON `"name":value` pair) at the end of the envelope's headers object.
local function add_header(env, field)
  local _, open = string.find(env, '"headers"%s*:%s*{')
  if not open then
    return env
  end
  local depth, i, n, empty = 1, open + 1, #env, true
  while i <= n do
    local at = string.find(env, '[{}%[%]"]', i)
    if not at then
      return env
    end
    local c = string.sub(env, at, at)
    if c == '"' then
      empty = false
      -- skip the string: find its closing quote, stepping over escapes
      local j = at + 1
      while true do
        local q = string.find(env, '["\\]', j)
        if not q then
          return env
        end
        if string.sub(env, q, q) == '\\' then
          j = q + 2
        else
          i = q + 1
          break
        end
      end
    elseif c == '{' or c == '[' then
      empty = false
      depth = depth + 1
      i = at + 1
    else
      depth = depth - 1
      if depth == 0 then
        local sep = ','
        if empty then
          sep = ''
        end
        return string.sub(env, 1, at - 1) .. sep .. field .. string.sub(env, at)
      end
      i = at + 1
    end
  end
  return env
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The naming rule of dead-letter queues is broker_core's (`dead_letter_queue`): the queue's
-- name and `suffix` (passed in by the caller, never spelled here), and a queue whose name ends
-- in `suffix` is a dead-letter queue with none of its own.
local function is_dead_letter_queue(queue, suffix)
  return #queue >= #suffix and string.sub(queue, -#suffix) == suffix
end

-- Moves an envelope to the dead-letter queue of `queue` (never itself a dead-letter queue),
-- recording why.
local function bury(prefix, queue, suffix, env, reason_json)
  local dlq = queue .. suffix
  env = add_header(env, '"x-dead-letter-reason":' .. reason_json)
  env = with_meta(env, redis.call('INCR', prefix .. '_broker.seq'), 0)
  redis.call('LPUSH', prefix .. dlq, env)
  redis.call('PUBLISH', prefix .. '_broker.wake', dlq)
end

-- Puts an envelope back at the consuming end of `list`, behind every waiting message published
-- before it: the place it had in publish order.
local function return_to_place(list, env, seq)
  local held = {}
  if seq then
    while true do
      local tail = redis.call('LINDEX', list, -1)
      if not tail then
        break
      end
      local tail_seq = parse_meta(tail)
      if tail_seq and tail_seq < seq then
        held[#held + 1] = redis.call('RPOP', list)
      else
        break
      end
    end
  end
  redis.call('RPUSH', list, env)
  for i = #held, 1, -1 do
    redis.call('RPUSH', list, held[i])
  end
end

-- Gives back an envelope that left its lease without an ack: `how` is 'requeue', 'delay' or
-- 'dead'. A message received max_receives times is dead-lettered instead. A dead-letter queue
-- (named with `suffix`) keeps what it holds: 'dead' and exhaustion requeue there. A message of
-- a deleted queue is dropped.
local function give_back(prefix, queue, suffix, env, how, delay_ms, now, max_receives,
                         exhausted_json, reason_json)
  if redis.call('EXISTS', prefix .. '_kombu.binding.' .. queue) == 0 then
    return
  end
  local seq, receives = parse_meta(env)
  local terminal = is_dead_letter_queue(queue, suffix)
  if how == 'dead' and not terminal then
    bury(prefix, queue, suffix, env, reason_json)
    return
  end
  if max_receives > 0 and receives >= max_receives and not terminal then
    bury(prefix, queue, suffix, env, exhausted_json)
    return
  end
  if how == 'delay' then
    redis.call('ZADD', prefix .. '_broker.delayed.' .. queue, now + delay_ms, env)
  else
    return_to_place(prefix .. queue, env, seq)
    redis.call('PUBLISH', prefix .. '_broker.wake', queue)
  end
end
