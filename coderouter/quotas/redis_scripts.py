"""The Lua scripts that admit and settle requests atomically in Redis (`coderouter.quotas.redis`).

Per scope (a token ``t:NAME`` or a token group ``g:NAME``) under the key prefix ``P``:

- ``P:b:IDX:START`` hash ``t r c``: settled tokens, requests and cost of the period with
  index IDX in `PERIODS` that started at START (kept until a day after the period ends);
- ``P:held`` hash ``n t c``: requests in flight and what they reserved;
- ``P:res`` hash id -> ``"tokens cost"`` and ``P:lease`` zset id -> expiry: the reservations;
  one whose lease expired (its process died or lost Redis) is released by the next
  admission and stays as ``x`` until settled;
- ``P:rpm`` zset id -> admission time, and ``P:tpm`` hash second -> settled tokens: the
  sliding 60 s windows.

``PREFIX:seeded`` exists once the counters were rebuilt from the usage table; admission
answers code 5 without it (Redis restarted empty), and the caller seeds and retries.
"""

from __future__ import annotations

_COMMON = """
local now = tonumber(ARGV[1])
-- Give back what reservation *rid* holds. An expired one (*expired*) stays as 'x', so its
-- settlement still records the usage, and a settlement sent twice records it once.
local function release(k, rid, expired)
  local amount = redis.call('HGET', k .. ':res', rid)
  if amount and amount ~= 'x' then
    local t, c = string.match(amount, '^(%S+) (%S+)$')
    redis.call('HINCRBY', k .. ':held', 'n', -1)
    -- 0 - x, not -x: Lua writes -0 for a zero, which HINCRBY refuses
    redis.call('HINCRBY', k .. ':held', 't', 0 - tonumber(t))
    redis.call('HINCRBYFLOAT', k .. ':held', 'c', 0 - tonumber(c))
  end
  if expired then
    redis.call('HSET', k .. ':res', rid, 'x')
  else
    redis.call('HDEL', k .. ':res', rid)
  end
  redis.call('ZREM', k .. ':lease', rid)
  return amount
end
"""

#: ARGV: now, id, lease expiry, tokens, cost, prefix, scope count, then per scope: its key,
#: its quota count, 6 values per quota (period index, start, end or -1, token, request and
#: cost limits or -1), then rpm, tpm, concurrent (or -1).
#: Returns {code, scope, detail, extra, then per scope 4 header values}: code 0 admitted,
#: 1 quota (detail: quota index, extra: 1 tokens / 2 requests / 3 cost, plus 10 when what is
#: used is below the limit and reservations in flight fill the rest), 2 concurrent (extra:
#: in flight), 3 rpm and 4 tpm (detail: seconds to wait), 5 not seeded. An admitted request
#: reserves its estimate, but no more than the tightest token or cost limit has left.
ADMIT = _COMMON + """
local id, expiry = ARGV[2], tonumber(ARGV[3])
local est_t, est_c = tonumber(ARGV[4]), tonumber(ARGV[5])
local prefix = ARGV[6]
if redis.call('EXISTS', prefix .. ':seeded') == 0 then return {5} end
local scopes, i = {}, 8
for s = 1, tonumber(ARGV[7]) do
  local sc = {key = prefix .. ':' .. ARGV[i], quotas = {}}
  local nq = tonumber(ARGV[i + 1])
  i = i + 2
  for q = 1, nq do
    sc.quotas[q] = {ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]),
                    tonumber(ARGV[i + 5])}
    i = i + 6
  end
  sc.rpm, sc.tpm, sc.conc = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  i = i + 3
  scopes[s] = sc
end

for _, sc in ipairs(scopes) do
  local k = sc.key
  for _, rid in ipairs(redis.call('ZRANGEBYSCORE', k .. ':lease', '-inf', now)) do
    release(k, rid, true)
  end
  local h = redis.call('HMGET', k .. ':held', 'n', 't', 'c')
  sc.n, sc.t, sc.c = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0
  if sc.n <= 0 then
    if h[1] then redis.call('DEL', k .. ':held') end
    sc.n, sc.t, sc.c = 0, 0, 0
  end
  redis.call('ZREMRANGEBYSCORE', k .. ':rpm', '-inf', now - 60)
  sc.count = redis.call('ZCARD', k .. ':rpm')
  sc.slots, sc.tsum = {}, 0
  local secs = redis.call('HGETALL', k .. ':tpm')
  for j = 1, #secs, 2 do
    local sec, amount = tonumber(secs[j]), tonumber(secs[j + 1])
    if sec <= now - 60 then
      redis.call('HDEL', k .. ':tpm', secs[j])
    else
      sc.tsum = sc.tsum + amount
      sc.slots[#sc.slots + 1] = {sec, amount}
    end
  end
  table.sort(sc.slots, function(a, b) return a[1] < b[1] end)
end

local function headers(out)
  for _, sc in ipairs(scopes) do
    if sc.rpm >= 0 then
      local newest = redis.call('ZRANGE', sc.key .. ':rpm', -1, -1, 'WITHSCORES')
      local reset = newest[2] and (tonumber(newest[2]) + 60 - now) or 0
      out[#out + 1] = tostring(math.max(0, sc.rpm - sc.count))
      out[#out + 1] = tostring(reset)
    else
      out[#out + 1] = '-1'
      out[#out + 1] = '0'
    end
    if sc.tpm >= 0 then
      local last = sc.slots[#sc.slots]
      out[#out + 1] = tostring(math.max(0, sc.tpm - sc.tsum - sc.t))
      out[#out + 1] = tostring(last and (last[1] + 60 - now) or 0)
    else
      out[#out + 1] = '-1'
      out[#out + 1] = '0'
    end
  end
  return out
end

for s, sc in ipairs(scopes) do
  for q, quota in ipairs(sc.quotas) do
    local b = redis.call('HMGET', sc.key .. ':b:' .. quota[1] .. ':' .. quota[2], 't', 'r', 'c')
    local bt, br, bc = tonumber(b[1]) or 0, tonumber(b[2]) or 0, tonumber(b[3]) or 0
    quota[6], quota[7] = bt, bc
    if quota[3] >= 0 and bt + sc.t >= quota[3] then
      return headers({1, s, q, bt < quota[3] and 11 or 1})
    end
    if quota[4] >= 0 and br + sc.n >= quota[4] then
      return headers({1, s, q, br < quota[4] and 12 or 2})
    end
    if quota[5] >= 0 and bc + sc.c >= quota[5] then
      return headers({1, s, q, bc < quota[5] and 13 or 3})
    end
  end
end
for s, sc in ipairs(scopes) do
  if sc.conc >= 0 and sc.n >= sc.conc then return headers({2, s, '1', sc.n}) end
  if sc.rpm >= 0 and sc.count >= sc.rpm then
    local at = redis.call('ZRANGE', sc.key .. ':rpm', sc.count - sc.rpm, sc.count - sc.rpm,
                          'WITHSCORES')
    return headers({3, s, tostring(tonumber(at[2]) + 60 - now), 0})
  end
  if sc.tpm >= 0 and sc.tsum + sc.t >= sc.tpm then
    local below, remaining = sc.tpm - sc.t, sc.tsum
    local wait = nil
    for _, slot in ipairs(sc.slots) do
      remaining = remaining - slot[2]
      if remaining < below then
        wait = slot[1] + 60 - now
        break
      end
    end
    if wait == nil then
      local last = sc.slots[#sc.slots]
      wait = last and (last[1] + 60 - now) or 0
    end
    return headers({4, s, tostring(wait), 0})
  end
end

for _, sc in ipairs(scopes) do
  for _, quota in ipairs(sc.quotas) do
    if quota[3] >= 0 then est_t = math.min(est_t, quota[3] - quota[6] - sc.t) end
    if quota[5] >= 0 then est_c = math.min(est_c, quota[5] - quota[7] - sc.c) end
  end
  if sc.tpm >= 0 then est_t = math.min(est_t, sc.tpm - sc.tsum - sc.t) end
end
est_t, est_c = math.max(0, est_t), math.max(0, est_c)
local held = string.format('%d %.17g', est_t, est_c)
for _, sc in ipairs(scopes) do
  local k = sc.key
  redis.call('HINCRBY', k .. ':held', 'n', 1)
  redis.call('HINCRBY', k .. ':held', 't', string.format('%d', est_t))
  redis.call('HINCRBYFLOAT', k .. ':held', 'c', string.format('%.17g', est_c))
  redis.call('HSET', k .. ':res', id, held)
  redis.call('ZADD', k .. ':lease', expiry, id)
  redis.call('ZADD', k .. ':rpm', now, id)
  for _, suffix in ipairs({':held', ':res', ':lease', ':rpm'}) do
    redis.call('EXPIRE', k .. suffix, 86400)
  end
  sc.n, sc.t, sc.c, sc.count = sc.n + 1, sc.t + est_t, sc.c + est_c, sc.count + 1
end
return headers({0, 0, 0, 0})
"""

#: ARGV: now, id, forwarded (1/0), tokens, cost, prefix, local (1/0), scope count, then per
#: scope: its key and 4 periods as (index, start, seconds to keep it or -1).
#: A reservation still known is released (an expired one was already); a forwarded
#: request's usage goes into every period and the tpm window, one that was never forwarded
#: takes its rpm entry back. Settling an unknown id does nothing, so a settlement sent again
#: after a timeout counts once; *local* settlements (admitted while Redis was unreachable,
#: no reservation) are made idempotent by a marker kept for a day instead.
SETTLE = _COMMON + """
local id, forwarded = ARGV[2], ARGV[3]
local tokens, cost, prefix = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local is_local = ARGV[7] == '1'
if is_local and not redis.call('SET', prefix .. ':done:' .. id, '1', 'NX', 'EX', 86400) then
  return 0
end
local i = 9
for s = 1, tonumber(ARGV[8]) do
  local k = prefix .. ':' .. ARGV[i]
  i = i + 1
  local released = release(k, id, false)  -- a local one held again after a rebuild
  local known = is_local or released
  if forwarded == '1' and known then
    for p = 1, 4 do
      local bucket = k .. ':b:' .. ARGV[i] .. ':' .. ARGV[i + 1]
      redis.call('HINCRBY', bucket, 't', tokens)
      redis.call('HINCRBY', bucket, 'r', 1)
      redis.call('HINCRBYFLOAT', bucket, 'c', cost)
      if tonumber(ARGV[i + 2]) > 0 then redis.call('EXPIRE', bucket, ARGV[i + 2]) end
      i = i + 3
    end
    if tokens > 0 then
      redis.call('HINCRBY', k .. ':tpm', tostring(math.floor(now)), tokens)
      redis.call('EXPIRE', k .. ':tpm', 120)
    end
  else
    if forwarded ~= '1' then redis.call('ZREM', k .. ':rpm', id) end
    i = i + 12
  end
end
return 1
"""

#: ARGV: lease expiry, prefix, then per reservation: its id, tokens, cost, scope count and
#: scope keys. Holds again, after Redis was rebuilt from the usage table, the requests a
#: process still has in flight (they have no row yet): each one once, so its settlement finds
#: it and records its usage.
REHOLD = """
local expiry, prefix, i = tonumber(ARGV[1]), ARGV[2], 3
while i <= #ARGV do
  local id, t, c, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  for s = 1, n do
    local k = prefix .. ':' .. ARGV[i]
    i = i + 1
    if redis.call('HSETNX', k .. ':res', id, t .. ' ' .. c) == 1 then
      redis.call('HINCRBY', k .. ':held', 'n', 1)
      redis.call('HINCRBY', k .. ':held', 't', t)
      redis.call('HINCRBYFLOAT', k .. ':held', 'c', c)
      redis.call('ZADD', k .. ':lease', expiry, id)
      for _, suffix in ipairs({':held', ':res', ':lease'}) do
        redis.call('EXPIRE', k .. suffix, 86400)
      end
    end
  end
end
return 1
"""
