package consume

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Delivery state, one Redis string per (subscription, message uid):
//
//	{prefix}cs:{<binding hex>}:<uid>   "st|until|n|copy"
//
// st is the state (l leased, a acknowledged, x being dead-lettered, d
// dead-lettered), until the end of the lease in Unix milliseconds, n the
// number of deliveries so far and copy the copy being delivered
// (cluster:ledger:entry:partition:batch). The key lives for the dedup
// window after its last change (a PX on every write).
//
// The state is what makes consumption stateless across replicas: a lease
// says a delivery is running until when, so a redelivered batch does not
// hand out a message that another replica's client is still working on;
// an ack recorded here is honoured by whichever replica next sees the
// message; the delivery count survives replicas; and a second copy of the
// same uid (from the disaster-recovery cluster or a spool replay) is
// recognised and dropped. Every change is one of the scripts below, so
// each is atomic. (Lua numbers are doubles and print with 14 significant
// digits: Unix milliseconds fit until the year 5138.)

// Outcomes of the lease script.
const (
	leaseDeliver   = 1 // hand it out; the lease is ours
	leaseConsumed  = 2 // acknowledged or dead-lettered already: ack this copy
	leaseDuplicate = 3 // another copy of the uid is leased right now: ack this copy
	leaseHold      = 4 // this copy is leased elsewhere: look again at until
	leaseDeadLeter = 5 // delivered maxDeliveries times: dead-letter it (we hold an 'x' lease)
)

// The scripts take a batch of messages of one subscription at a time (one
// round trip and one script call per receive, ack or nack). Their keys
// share the hash tag {binding}, so a batch stays on one Redis Cluster slot.

// leaseScript: KEYS: state of each message. ARGV: now ms, lease ms, ttl
// ms, max deliveries, dead-letter lease ms, then the copy id of each
// message. Returns, per message, outcome, n, until, acked copy (1/0).
var leaseScript = redis.NewScript(`
local now, lease, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local maxd, dlease = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i, k in ipairs(KEYS) do
  local id = ARGV[5 + i]
  local v = redis.call('GET', k)
  if not v then
    redis.call('SET', k, 'l|' .. (now + lease) .. '|1|' .. id, 'PX', ttl)
    out[#out + 1] = 1; out[#out + 1] = 1; out[#out + 1] = now + lease; out[#out + 1] = 0
  else
    local st, untl, n, cur = string.match(v, '^(%a)|(%d+)|(%d+)|(.*)$')
    untl, n = tonumber(untl) or 0, tonumber(n) or 0
    if st == 'a' or st == 'd' then
      local same = 0
      if cur == id then same = 1 end
      out[#out + 1] = 2; out[#out + 1] = n; out[#out + 1] = 0; out[#out + 1] = same
    elseif untl > now then
      if cur == id then out[#out + 1] = 4 else out[#out + 1] = 3 end
      out[#out + 1] = n; out[#out + 1] = untl; out[#out + 1] = 0
    elseif n >= maxd then
      redis.call('SET', k, 'x|' .. (now + dlease) .. '|' .. n .. '|' .. id, 'PX', ttl)
      out[#out + 1] = 5; out[#out + 1] = n; out[#out + 1] = now + dlease; out[#out + 1] = 0
    else
      n = n + 1
      redis.call('SET', k, 'l|' .. (now + lease) .. '|' .. n .. '|' .. id, 'PX', ttl)
      out[#out + 1] = 1; out[#out + 1] = n; out[#out + 1] = now + lease; out[#out + 1] = 0
    end
  end
end
return out
`)

// Outcomes of the ack script.
const (
	ackDone    = 1 // recorded now
	ackAlready = 2 // it was acknowledged before
	ackDead    = 3 // it was dead-lettered (or is being)
)

// ackScript: KEYS: states. ARGV: ttl ms, then each copy id. Returns an
// outcome per message. The delivery count is kept.
var ackScript = redis.NewScript(`
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  local st, n = 'l', '0'
  if v then st, n = string.match(v, '^(%a)|%d+|(%d+)|') end
  if st == 'a' then
    out[i] = 2
  elseif st == 'd' or st == 'x' then
    out[i] = 3
  else
    redis.call('SET', k, 'a|0|' .. (n or '0') .. '|' .. ARGV[1 + i], 'PX', ARGV[1])
    out[i] = 1
  end
end
return out
`)

// nackScript ends leases early: a message may be delivered again from
// now+delay. Only the latest delivery of the copy may do that. KEYS:
// states. ARGV: now ms, delay ms, ttl ms, then copy id and delivery of
// each message. Returns 1 (nacked) or 0 per message.
var nackScript = redis.NewScript(`
local now, delay, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  out[i] = 0
  if v then
    local st, n, cur = string.match(v, '^(%a)|%d+|(%d+)|(.*)$')
    if st == 'l' and cur == ARGV[2 + 2 * i] and n == ARGV[3 + 2 * i] then
      redis.call('SET', k, 'l|' .. (now + delay) .. '|' .. n .. '|' .. cur, 'PX', ttl)
      out[i] = 1
    end
  end
end
return out
`)

// deadScript marks a message dead-lettered after its copy reached the
// dead-letter topic. KEYS[1] state. ARGV: ttl ms.
var deadScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 1) == 'x' then
  redis.call('SET', KEYS[1], 'd' .. string.sub(v, 2), 'PX', ARGV[1])
  return {1}
end
return {0}
`)

var allScripts = []*redis.Script{leaseScript, ackScript, nackScript, deadScript}

// stateIDFor is the id of a message's delivery state: its uid, or, for a
// message produced without one, its position. A copy re-published by a
// retry plan keeps its uid but has a retry step (psc-retry-step): it gets
// its own state, uid#retry<step>, so the per-subscription duplicate check
// does not take it for the copy that was nacked (and acknowledged).
func stateIDFor(uid string, retryStep int, k copyKey) string {
	if uid == "" {
		return "m:" + k.String()
	}
	if retryStep > 0 {
		return uid + "#retry" + strconv.Itoa(retryStep)
	}
	return uid
}

// retryStepOf reads psc-retry-step; 0 when absent or unreadable.
func retryStepOf(props map[string]string) int {
	v, ok := props[PropRetryStep]
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxRetryStep {
		return 0
	}
	return n
}

// states runs the delivery-state scripts.
type states struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
}

func (s *states) key(binding uint64, id string) string {
	return s.prefix + "cs:{" + bindingHex(binding) + "}:" + id
}

// load makes sure Redis has the scripts, so pipelines can use EVALSHA.
func (s *states) load(ctx context.Context) error {
	for _, sc := range allScripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return err
		}
	}
	return nil
}

// eval runs a script (EVALSHA, or EVAL when Redis lost its scripts) with
// the request's deadline capped at the store timeout. It returns one
// integer per key.
func (s *states) eval(ctx context.Context, sc *redis.Script, keys []string, args []any, per int) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	vals, err := sc.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, err
	}
	if len(vals) != per*len(keys) {
		return nil, fmt.Errorf("consume: state script answered %d values for %d keys", len(vals), len(keys))
	}
	return vals, nil
}

// leaseResult is what the lease script said about one copy.
type leaseResult struct {
	outcome int
	n       int
	until   time.Time
	same    bool // leaseConsumed: this very copy was acknowledged
}

func parseLeases(vals []int64) []leaseResult {
	out := make([]leaseResult, len(vals)/4)
	for i := range out {
		v := vals[4*i : 4*i+4]
		out[i] = leaseResult{outcome: int(v[0]), n: int(v[1]), until: time.UnixMilli(v[2]), same: v[3] == 1}
	}
	return out
}
