package delay

import "github.com/redis/go-redis/v9"

// The Lua scripts of the index. Each takes the key prefix as ARGV[1] and
// builds its key names from it; KEYS[1] is always the due set, so clients
// route the call to the right node. On Redis Cluster, put a hash tag in the
// prefix ("{psc}:delay:") so that every key lives in one slot.
//
// Keys (P is the prefix):
//
//	P seq            counter for message numbers
//	P due            sorted set: member = 16 hex digits of the number,
//	                 score = due time in Unix seconds, or the lease deadline
//	                 while a replica holds a claim
//	P uid            hash: uid -> member
//	P m:<member>     string: the message as JSON (see record)
//	P claims         hash: member -> claims so far, for claimed messages only
//	P k:<topic>\n<key> set of the numbers (decimal, so that Redis 7.0 keeps a
//	                 small set as a compact intset) with that topic and key

// scheduleScript: ARGV prefix, uid, due, body, topic, key.
// Returns {1, member} when stored, {0, member} when the uid was already there.
var scheduleScript = redis.NewScript(`
local p = ARGV[1]
local old = redis.call('HGET', p..'uid', ARGV[2])
if old then return {0, old} end
local seq = redis.call('INCR', p..'seq')
local m = string.format('%016x', seq)
redis.call('HSET', p..'uid', ARGV[2], m)
redis.call('SET', p..'m:'..m, ARGV[4])
redis.call('ZADD', p..'due', ARGV[3], m)
if ARGV[6] ~= '' then redis.call('SADD', p..'k:'..ARGV[5]..'\n'..ARGV[6], seq) end
return {1, m}
`)

// claimScript: ARGV prefix, lease seconds, now (empty for Redis's clock), members...
// Times are whole Unix seconds: scores are whole seconds, so "score <= now"
// is exact with now rounded down, and Lua's doubles lose nothing.
// Redis's own clock decides what is due, so replicas with skewed clocks
// still never take a message early (tests pass their own now). For each member it returns
// {member, 'ok', body, claims, lease deadline}, {member, 'wait', due} or
// {member, 'gone'}. A claim moves the score to the lease deadline, so an
// unacknowledged message becomes due again when the lease ends.
var claimScript = redis.NewScript(`
local p = ARGV[1]
local now = tonumber(ARGV[3])
if not now then now = tonumber(redis.call('TIME')[1]) end
local lease = now + tonumber(ARGV[2])
local out = {}
for i = 4, #ARGV do
  local m = ARGV[i]
  local s = redis.call('ZSCORE', p..'due', m)
  if not s then
    out[#out+1] = {m, 'gone'}
  elseif tonumber(s) > now then
    out[#out+1] = {m, 'wait', s}
  else
    local body = redis.call('GET', p..'m:'..m)
    if not body then
      redis.call('ZREM', p..'due', m)
      out[#out+1] = {m, 'gone'}
    else
      redis.call('ZADD', p..'due', lease, m)
      local n = redis.call('HINCRBY', p..'claims', m, 1)
      out[#out+1] = {m, 'ok', body, n, tostring(lease)}
    end
  end
end
return out
`)

// removeScript: ARGV prefix, uid, member (empty for any).
// Deletes the message. Returns 0 when there was none, 1 when it was
// removed, 2 when it was removed after having been claimed (so it may have
// been forwarded).
var removeScript = redis.NewScript(`
local p = ARGV[1]
local m = redis.call('HGET', p..'uid', ARGV[2])
if not m or (ARGV[3] ~= '' and ARGV[3] ~= m) then return 0 end
local body = redis.call('GET', p..'m:'..m)
if body then
  local ok, r = pcall(cjson.decode, body)
  if ok and type(r.k) == 'string' and r.k ~= '' then
    redis.call('SREM', p..'k:'..r.t..'\n'..r.k, string.format('%d', tonumber(m, 16)))
  end
end
local claimed = redis.call('HDEL', p..'claims', m)
redis.call('DEL', p..'m:'..m)
redis.call('ZREM', p..'due', m)
redis.call('HDEL', p..'uid', ARGV[2])
return 1 + claimed
`)

// cancelKeyScript: ARGV prefix, topic, key.
// Deletes every message with that topic and key; returns their uids.
var cancelKeyScript = redis.NewScript(`
local p = ARGV[1]
local set = p..'k:'..ARGV[2]..'\n'..ARGV[3]
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', set)) do
  local m = string.format('%016x', tonumber(n))
  local body = redis.call('GET', p..'m:'..m)
  if body then
    local ok, r = pcall(cjson.decode, body)
    if ok and type(r.u) == 'string' then
      if type(r.i) == 'string' and r.i ~= '' then
        redis.call('HDEL', p..'uid', r.i)
      else
        redis.call('HDEL', p..'uid', r.u)
      end
      out[#out+1] = r.u
    end
  end
  redis.call('DEL', p..'m:'..m)
  redis.call('ZREM', p..'due', m)
  redis.call('HDEL', p..'claims', m)
end
redis.call('DEL', set)
return out
`)

// rescheduleScript: ARGV prefix, uid, member, due, body, now (empty for Redis's clock).
// Returns 0 when the message is gone, -1 when a claim holds it, 1 when done.
var rescheduleScript = redis.NewScript(`
local p = ARGV[1]
local m = redis.call('HGET', p..'uid', ARGV[2])
if not m or m ~= ARGV[3] then return 0 end
local now = tonumber(ARGV[6])
if not now then now = tonumber(redis.call('TIME')[1]) end
local s = redis.call('ZSCORE', p..'due', m)
if redis.call('HEXISTS', p..'claims', m) == 1 and s and tonumber(s) > now then
  return -1
end
redis.call('SET', p..'m:'..m, ARGV[5])
redis.call('ZADD', p..'due', ARGV[4], m)
redis.call('HDEL', p..'claims', m)
return 1
`)

// pageScript: KEYS due set; ARGV from, count, last member, last score.
// Returns up to count {member, score, ...} pairs in index order: from the
// first entry with score >= from when no last member is given, else from
// the first entry after (last score, last member). That position is found by
// rank when the last member is still in place, O(log N), else by a binary
// search among the entries with the last score (equal scores are ordered by
// member bytes; members are hex digits, so Lua's string order agrees),
// O(log^2 N). Each page thus starts strictly after the previous one.
var pageScript = redis.NewScript(`
local z, last, lastScore = KEYS[1], ARGV[3], ARGV[4]
local start
if last == '' then
  start = redis.call('ZCOUNT', z, '-inf', '(' .. ARGV[1])
else
  local s = redis.call('ZSCORE', z, last)
  if s and tonumber(s) == tonumber(lastScore) then
    start = redis.call('ZRANK', z, last) + 1
  else
    local a = redis.call('ZCOUNT', z, '-inf', '(' .. lastScore)
    local b = redis.call('ZCOUNT', z, '-inf', lastScore)
    while a < b do
      local mid = math.floor((a + b) / 2)
      if redis.call('ZRANGE', z, mid, mid)[1] <= last then a = mid + 1 else b = mid end
    end
    start = a
  end
end
return redis.call('ZRANGE', z, start, start + tonumber(ARGV[2]) - 1, 'WITHSCORES')
`)
