package consume

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Delivery state, one Redis hash per (subscription, message uid):
//
//	{prefix}cs:{binding hex}:{uid}   fields id, st, until, n, node
//
// id is the copy being delivered (cluster:ledger:entry:partition:batch),
// st the state (l leased, a acknowledged, x being dead-lettered, d
// dead-lettered), until the end of the lease in Unix milliseconds, n the
// number of deliveries so far and node the replica that holds the lease.
// The key lives for the dedup window after its last change.
//
// The hash is what makes consumption stateless across replicas: a lease
// says who may hand the message out until when, so a redelivered batch
// does not hand out a message that another replica's client is still
// working on; an ack recorded here is honoured by whichever replica next
// sees the message; and a second copy of the same uid (from the
// disaster-recovery cluster or a spool replay) is recognised and dropped.
// Every change is one of the scripts below, so each is atomic.

// Outcomes of the lease script.
const (
	leaseDeliver   = 1 // hand it out; the lease is ours
	leaseConsumed  = 2 // acknowledged or dead-lettered already: ack this copy
	leaseDuplicate = 3 // another copy of the uid is leased right now: ack this copy
	leaseHold      = 4 // this copy is leased elsewhere: look again at until
	leaseDeadLeter = 5 // delivered maxDeliveries times: dead-letter it (we hold an 'x' lease)
)

// leaseScript: KEYS[1] state. ARGV: copy id, now ms, lease ms, ttl ms,
// node, max deliveries, dead-letter lease ms. Returns {outcome, n, until, acked copy (1/0)}.
var leaseScript = redis.NewScript(`
local k = KEYS[1]
local id, now, lease, ttl, node = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local maxd, dlease = tonumber(ARGV[6]), tonumber(ARGV[7])
local s = redis.call('HMGET', k, 'id', 'st', 'until', 'n')
if not s[2] then
  redis.call('HSET', k, 'id', id, 'st', 'l', 'until', now + lease, 'n', 1, 'node', node)
  redis.call('PEXPIRE', k, ttl)
  return {1, 1, now + lease, 0}
end
local st, untl, n = s[2], tonumber(s[3]) or 0, tonumber(s[4]) or 0
if st == 'a' or st == 'd' then
  local same = 0
  if s[1] == id then same = 1 end
  return {2, n, 0, same}
end
if untl > now then
  if s[1] == id then return {4, n, untl, 0} end
  return {3, n, untl, 0}
end
if n >= maxd then
  redis.call('HSET', k, 'id', id, 'st', 'x', 'until', now + dlease, 'node', node)
  redis.call('PEXPIRE', k, ttl)
  return {5, n, now + dlease, 0}
end
n = n + 1
redis.call('HSET', k, 'id', id, 'st', 'l', 'until', now + lease, 'n', n, 'node', node)
redis.call('PEXPIRE', k, ttl)
return {1, n, now + lease, 0}
`)

// Outcomes of the ack script.
const (
	ackDone    = 1 // recorded now
	ackAlready = 2 // it was acknowledged before
	ackDead    = 3 // it was dead-lettered (or is being)
)

// ackScript: KEYS[1] state. ARGV: copy id, ttl ms.
var ackScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'st')
if st == 'a' then return 2 end
if st == 'd' or st == 'x' then return 3 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'st', 'a')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// nackScript ends a lease early: the message may be delivered again from
// now+delay. Only the latest delivery of the copy may do that. KEYS[1]
// state. ARGV: copy id, delivery, now ms, delay ms, ttl ms. Returns 1 or 0.
var nackScript = redis.NewScript(`
local s = redis.call('HMGET', KEYS[1], 'id', 'st', 'n')
if s[2] ~= 'l' or s[1] ~= ARGV[1] or tonumber(s[3]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'until', tonumber(ARGV[3]) + tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

// deadScript marks a message dead-lettered after its copy reached the
// dead-letter topic. KEYS[1] state. ARGV: ttl ms.
var deadScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'st')
if st == 'x' then
  redis.call('HSET', KEYS[1], 'st', 'd')
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

var allScripts = []*redis.Script{leaseScript, ackScript, nackScript, deadScript}

// stateIDFor is the id of a message's delivery state: its uid, or, for a
// message produced without one, its position.
func stateIDFor(uid string, k copyKey) string {
	if uid != "" {
		return uid
	}
	return "m:" + k.String()
}

// states runs the delivery-state scripts.
type states struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
}

func (s *states) key(binding uint64, id string) string {
	return s.prefix + "cs:" + bindingHex(binding) + ":" + id
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

// scriptCall is one script run in a pipeline.
type scriptCall struct {
	script *redis.Script
	key    string
	args   []any
	cmd    *redis.Cmd
}

// run executes calls in one pipeline. Calls that fail with NOSCRIPT (Redis
// restarted since load) are retried once after loading the scripts; each
// call's own error is left in its cmd. The result is an error only when
// every call failed.
func (s *states) run(ctx context.Context, calls []scriptCall) error {
	if len(calls) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	exec := func(idx []int) {
		pipe := s.rdb.Pipeline()
		for _, i := range idx {
			c := &calls[i]
			c.cmd = c.script.EvalSha(ctx, pipe, []string{c.key}, c.args...)
		}
		_, _ = pipe.Exec(ctx) // errors are in the commands
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	exec(all)
	var retry []int
	for i := range calls {
		if redis.HasErrorPrefix(calls[i].cmd.Err(), "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		if err := s.load(ctx); err == nil {
			exec(retry)
		}
	}
	var firstErr error
	failed := 0
	for i := range calls {
		if err := calls[i].cmd.Err(); err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if failed == len(calls) {
		return firstErr
	}
	return nil
}

// leaseResult is what the lease script said about one copy.
type leaseResult struct {
	outcome int
	n       int
	until   time.Time
	same    bool // leaseConsumed: this very copy was acknowledged
}

func parseLease(cmd *redis.Cmd) (leaseResult, error) {
	vals, err := cmd.Int64Slice()
	if err != nil {
		return leaseResult{}, err
	}
	if len(vals) != 4 {
		return leaseResult{}, fmt.Errorf("consume: lease script answered %v", vals)
	}
	return leaseResult{outcome: int(vals[0]), n: int(vals[1]), until: time.UnixMilli(vals[2]), same: vals[3] == 1}, nil
}
