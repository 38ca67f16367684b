package consume

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/redis/go-redis/v9"
)

// Delivery state, one hash field per (subscription, message), in hashes
// that each cover one time bucket of the subscription:
//
//	{prefix}cs2:{<binding hex>}:<width ms>:<bucket>   field <state id>  "st|n|until|need|copy"
//
// st is the state (l leased, a acknowledged, x being dead-lettered, d
// dead-lettered), n the number of deliveries so far, until the end of the
// lease in Unix milliseconds on the engine's clock, need the Unix
// milliseconds on Redis's clock until which the entry must stay visible,
// and copy the copy being delivered (cluster:ledger:entry:partition:batch).
//
// Buckets are Options.State.DedupWindow wide, or two ack timeouts and a minute
// when that is longer (the width is in the key name, so a changed window
// or ack timeout never reads another width's buckets), and numbered on
// Redis's clock (TIME), so every replica agrees on them. A script looks a
// field up in the current bucket, then in the previous one, and writes to
// the current one; a bucket expires when it stops being looked at, two
// widths after it began. So an entry stays visible at least one window
// after its last change and at most two. An entry that must live longer
// (a long ack timeout, a long nack delay, a dead-letter hold) is written
// to every bucket up to the one that is still looked at when it is due,
// and every later write of the field covers at least as far, so a newer
// value is always in the current bucket whenever an older one is in the
// previous: "current, else previous" is always the latest value.
//
// Why hashes and not one key per message (the layout before, "cs:"):
// creating a key with its own expiry cost Redis about 2 us per message and
// the scripts about 3 us per message each; a field in a bucket hash, read
// with one HMGET and written with one HSET per batch, costs about a third
// (docs/benchmarks.md, "consume"). The two layouts do not see each other:
// see docs/adr/060-consume.md about upgrading.
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

// statePrelude is shared by every script. KEYS[1] is the subscription's
// bucket prefix (it carries the {binding} hash tag, so every bucket of a
// subscription is on one Redis Cluster slot); ARGV[1] the bucket width in
// ms. lookup reads fields (current bucket, then the previous one for those
// it did not find), parse splits a
// value, put queues a write that stays visible until need (Redis ms), and
// flush writes the queue with one HSET and one PEXPIREAT per bucket.
// pend is indexed by bucket offset from the current one (1, 2, ...), never
// by bucket number: a bucket number is in the millions, and gopher-lua
// (miniredis, the embedded mode) stores an integer key below 2^26 in a
// table's array part, filling every index before it, which cost a first
// receive 1.1-1.7 s and about 260 MB there (ADR 080; docs/benchmarks.md,
// "embedded consume").
// written holds the values put so far, so a batch naming a field twice
// (two copies of one uid) sees its own first write, as one by one would.
const statePrelude = `
local root, B = KEYS[1], tonumber(ARGV[1])
local tm = redis.call('TIME')
local rnow = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local cb = math.floor(rnow / B)
local CHUNK = 500
local function hmget(key, fields)
  local out = {}
  for s = 1, #fields, CHUNK do
    local e = math.min(s + CHUNK - 1, #fields)
    local got = redis.call('HMGET', key, unpack(fields, s, e))
    for i = s, e do out[i] = got[i - s + 1] end
  end
  return out
end
local function lookup(fields)
  local vals = hmget(root .. cb, fields)
  local n = 0
  for i = 1, #fields do
    if not vals[i] then n = n + 1 end
  end
  if n == #fields then
    return hmget(root .. (cb - 1), fields)
  elseif n > 0 then
    local miss, at = {}, {}
    for i = 1, #fields do
      if not vals[i] then miss[#miss + 1] = fields[i]; at[#at + 1] = i end
    end
    local prev = hmget(root .. (cb - 1), miss)
    for j = 1, #miss do vals[at[j]] = prev[j] end
  end
  return vals
end
local function parse(v)
  local st, n, u, nd, cp = string.match(v, '^(%a)|(%d+)|(%d+)|(%d+)|(.*)$')
  return st, tonumber(n) or 0, tonumber(u) or 0, tonumber(nd) or 0, cp
end
local pend, written = {}, {}
local function put(f, v, need)
  written[f] = v
  local last = math.max(cb, math.floor(need / B) - 1)
  for k = cb, last do
    local p = pend[k - cb + 1]
    if not p then p = {}; pend[k - cb + 1] = p end
    p[#p + 1] = f; p[#p + 1] = v
  end
end
local function flush()
  for i, p in ipairs(pend) do
    local k = cb + i - 1
    local key = root .. k
    for s = 1, #p, 2 * CHUNK do
      redis.call('HSET', key, unpack(p, s, math.min(s + 2 * CHUNK - 1, #p)))
    end
    redis.call('PEXPIREAT', key, (k + 2) * B + 60000)
  end
end
`

// The scripts take a batch of messages of one subscription at a time (one
// round trip and one script call per receive, ack or nack).

// leaseScript: ARGV: width, now ms, lease ms, max deliveries, dead-letter
// lease ms, keep ms (how long past now on Redis's clock a lease entry must
// stay: two leases and a minute), attempt (unique per call), then the
// state id of each message, then its copy id. Returns, per message,
// outcome, n, until, acked copy (1/0); nothing at all when the attempt was
// withdrawn (releaseScript ran first: the caller gave up on it).
var leaseScript = redis.NewScript(statePrelude + `
local now, lease, maxd, dlease, keep = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call('EXISTS', root .. 'w:' .. ARGV[7]) == 1 then return {} end
local n = (#ARGV - 7) / 2
local fields = {}
for i = 1, n do fields[i] = ARGV[7 + i] end
local vals = lookup(fields)
local luntil = now + lease
local lneed = rnow + keep
local fresh = 'l|1|' .. luntil .. '|' .. lneed .. '|'
local out = {}
for i = 1, n do
  local id, v = ARGV[7 + n + i], written[fields[i]] or vals[i]
  if not v then
    put(fields[i], fresh .. id, lneed)
    out[#out + 1] = 1; out[#out + 1] = 1; out[#out + 1] = luntil; out[#out + 1] = 0
  else
    local st, cnt, untl, nd, cur = parse(v)
    if st == 'a' or st == 'd' then
      local same = 0
      if cur == id then same = 1 end
      out[#out + 1] = 2; out[#out + 1] = cnt; out[#out + 1] = 0; out[#out + 1] = same
    elseif untl > now then
      if cur == id then out[#out + 1] = 4 else out[#out + 1] = 3 end
      out[#out + 1] = cnt; out[#out + 1] = untl; out[#out + 1] = 0
    elseif cnt >= maxd then
      local need = math.max(nd, rnow + dlease + keep)
      put(fields[i], 'x|' .. cnt .. '|' .. (now + dlease) .. '|' .. need .. '|' .. id, need)
      out[#out + 1] = 5; out[#out + 1] = cnt; out[#out + 1] = now + dlease; out[#out + 1] = 0
    else
      local need = math.max(nd, lneed)
      cnt = cnt + 1
      put(fields[i], 'l|' .. cnt .. '|' .. luntil .. '|' .. need .. '|' .. id, need)
      out[#out + 1] = 1; out[#out + 1] = cnt; out[#out + 1] = luntil; out[#out + 1] = 0
    end
  end
end
flush()
return out
`)

// releaseScript withdraws a lease attempt whose answer was lost (a
// timeout, a broken connection): the attempt may have run, or may still
// run later. It marks the attempt withdrawn, so a late run does nothing,
// and undoes what a run before it wrote: a lease (or dead-letter lease) on
// this copy ending exactly when the attempt's would goes back to not
// leased, with the delivery it counted taken back. ARGV: width, attempt,
// mark ms (how long the mark stays), lease until ms, dead-letter until ms,
// then the state id of each message, then its copy id. Returns {undone}.
var releaseScript = redis.NewScript(statePrelude + `
redis.call('SET', root .. 'w:' .. ARGV[2], '1', 'PX', ARGV[3])
local luntil, xuntil = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = (#ARGV - 5) / 2
local fields = {}
for i = 1, n do fields[i] = ARGV[5 + i] end
local vals = lookup(fields)
local undone = 0
for i = 1, n do
  local v = written[fields[i]] or vals[i]
  if v then
    local st, cnt, untl, nd, cur = parse(v)
    if cur == ARGV[5 + n + i] and ((st == 'l' and untl == luntil) or (st == 'x' and untl == xuntil)) then
      if st == 'l' then cnt = cnt - 1 end
      put(fields[i], 'l|' .. cnt .. '|0|' .. nd .. '|' .. cur, nd)
      undone = undone + 1
    end
  end
end
flush()
return {undone}
`)

// Outcomes of the ack script.
const (
	ackDone    = 1 // recorded now
	ackAlready = 2 // it was acknowledged before
	ackDead    = 3 // it was dead-lettered (or is being)
)

// ackScript: ARGV: width, then the state id of each message, then its copy
// id. Returns an outcome per message. The delivery count is kept.
var ackScript = redis.NewScript(statePrelude + `
local n = (#ARGV - 1) / 2
local fields = {}
for i = 1, n do fields[i] = ARGV[1 + i] end
local vals = lookup(fields)
local out = {}
for i = 1, n do
  local f, cp = fields[i], ARGV[1 + n + i]
  local v = written[f] or vals[i]
  local b = v and string.byte(v, 1)
  if not v then
    put(f, 'a|0|0|' .. rnow .. '|' .. cp, rnow)
    out[i] = 1
  elseif b == 97 then -- a
    out[i] = 2
  elseif b == 100 or b == 120 then -- d, x
    out[i] = 3
  else
    -- Leased: keep the count (and the rest) as it is when the lease is
    -- on this copy, the usual case; else rebuild with this copy.
    local nd = tonumber(string.match(v, '^%a|%d+|%d+|(%d+)|')) or 0
    if string.sub(v, -#cp - 1) == '|' .. cp then
      put(f, 'a' .. string.sub(v, 2), nd)
    else
      local _, cnt = parse(v)
      put(f, 'a|' .. cnt .. '|0|' .. nd .. '|' .. cp, nd)
    end
    out[i] = 1
  end
end
flush()
return out
`)

// nackScript ends leases early: a message may be delivered again from
// now+delay. Only the latest delivery of the copy may do that. ARGV:
// width, now ms, delay ms, keep ms, then per message its state id, copy id
// and delivery (three lists). Returns 1 (nacked) or 0 per message.
var nackScript = redis.NewScript(statePrelude + `
local now, delay, keep = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = (#ARGV - 4) / 3
local fields = {}
for i = 1, n do fields[i] = ARGV[4 + i] end
local vals = lookup(fields)
local out = {}
for i = 1, n do
  out[i] = 0
  local v = written[fields[i]] or vals[i]
  if v then
    local st, cnt, _, nd, cur = parse(v)
    if st == 'l' and cur == ARGV[4 + n + i] and cnt == tonumber(ARGV[4 + 2 * n + i]) then
      local need = math.max(nd, rnow + delay + keep)
      put(fields[i], 'l|' .. cnt .. '|' .. (now + delay) .. '|' .. need .. '|' .. cur, need)
      out[i] = 1
    end
  end
end
flush()
return out
`)

// deadScript marks a message dead-lettered after its copy reached the
// dead-letter topic. ARGV: width, state id. Returns {1} or {0}.
var deadScript = redis.NewScript(statePrelude + `
local v = lookup({ARGV[2]})[1]
if v and string.sub(v, 1, 1) == 'x' then
  local _, _, _, nd = parse(v)
  put(ARGV[2], 'd' .. string.sub(v, 2), math.max(nd, rnow))
  flush()
  return {1}
end
return {0}
`)

var allScripts = []*redis.Script{leaseScript, releaseScript, ackScript, nackScript, deadScript}

// stateIDFor is the id of a message's delivery state: its uid, or, for a
// message produced without one, its position. On a subscription that
// deduplicates by idempotency key (DedupeKey), a message with a key has
// keyHash (keyHashOf) and its state is "k:" and the hash instead, so every
// copy of one (app, key) shares one state whatever uid it carries. A copy
// re-published by a retry plan keeps its uid (and key) but has a retry step
// (psc-retry-step): it gets its own state, <id>#retry<step>, so the
// per-subscription duplicate check does not take it for the copy that was
// nacked (and acknowledged).
func stateIDFor(uid string, retryStep int, k copyKey, keyHash string) string {
	var id string
	switch {
	case len(keyHash) == keyHashBytes:
		id = "k:" + base64.RawURLEncoding.EncodeToString([]byte(keyHash))
	case uid == "":
		return "m:" + k.String()
	default:
		id = uid
	}
	if retryStep > 0 {
		return id + "#retry" + strconv.Itoa(retryStep)
	}
	return id
}

// keyHashBytes is the length of keyHashOf's answer (128 bits: collisions
// between two keys of one subscription's window are not a concern).
const keyHashBytes = 16

// keyHashOf identifies a message's (app, idempotency key) for DedupeKey:
// SHA-256 over app, a zero byte and the key, truncated. It is nil for a
// message without an idempotency key (deduplicated by uid then). The hash
// (16 raw bytes in a string, so AckID stays comparable), not the key, goes
// into state ids and ackIds: a key may be 255 bytes.
func keyHashOf(props map[string]string) string {
	key := props[wire.PropIdempotencyKey]
	if key == "" {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(props[wire.PropApp]))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return string(h.Sum(nil)[:keyHashBytes])
}

// retryStepOf reads psc-retry-step; 0 when absent or unreadable.
func retryStepOf(props map[string]string) int {
	v, ok := props[wire.PropRetryStep]
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
	dedup   time.Duration // Options.State.DedupWindow
}

// space is one subscription's delivery state: its buckets' width.
type space struct {
	binding uint64
	width   time.Duration
}

// space returns a subscription's state space. The bucket width is the
// dedup window, or two ack timeouts and a minute when that is longer, so
// a lease never has to be written ahead (only long nack delays and
// dead-letter holds are).
func (s *states) space(binding uint64, ackTimeout time.Duration) space {
	return space{binding: binding, width: max(s.dedup, 2*ackTimeout+time.Minute)}
}

// root is the key prefix of a subscription's buckets (KEYS[1] of every
// script).
func (s *states) root(sp space) string {
	return s.prefix + "cs2:{" + bindingHex(sp.binding) + "}:" + strconv.FormatInt(sp.width.Milliseconds(), 10) + ":"
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

// eval runs a script (EVALSHA, or EVAL when Redis lost its scripts) on a
// subscription's state with the request's deadline capped at the store
// timeout. args[0] is a placeholder eval fills with the bucket width
// (ARGV[1]); it returns per values for each of the n messages.
func (s *states) eval(ctx context.Context, sc *redis.Script, sp space, n int, args []any, per int) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	args[0] = sp.width.Milliseconds()
	vals, err := sc.Run(ctx, s.rdb, []string{s.root(sp)}, args...).Int64Slice()
	if err != nil {
		return nil, err
	}
	if len(vals) != per*n {
		return nil, fmt.Errorf("consume: state script answered %d values for %d messages", len(vals), n)
	}
	return vals, nil
}

// legacyKeys looks (briefly, on the client's node) for delivery state of
// the layout before the bucket hashes, one key per message
// ({prefix}cs:{<binding>}:<uid>), which an older replica may still be
// writing. It returns how many it saw; 0 also when it could not look.
func (s *states) legacyKeys(ctx context.Context) int {
	var cursor uint64
	seen := 0
	for range 20 {
		keys, next, err := s.rdb.Scan(ctx, cursor, s.prefix+"cs:{*", 1000).Result()
		if err != nil {
			return seen
		}
		seen += len(keys)
		if seen > 0 || next == 0 {
			return seen
		}
		cursor = next
	}
	return seen
}

// widthArg is the placeholder for ARGV[1] (the bucket width) that eval fills.
func (s *states) widthArg() any { return nil }

// Lease attempts are named <random per process>-<sequence>, unique across
// replicas, so a withdrawal (releaseScript) marks exactly one attempt.
var (
	attemptPrefix = func() string {
		var b [6]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	attemptSeq atomic.Uint64
)

func newAttempt() string {
	return attemptPrefix + "-" + strconv.FormatUint(attemptSeq.Add(1), 10)
}

// release withdraws lease attempt (see releaseScript) on its own deadline:
// the request's may be what ended. luntil and xuntil are the ends the
// attempt's lease and dead-letter lease would have. It returns how many
// leases it undid.
func (s *states) release(sp space, attempt string, mark time.Duration, luntil, xuntil int64, recs []*record) (int64, error) {
	args := make([]any, 0, 5+2*len(recs))
	args = append(args, s.widthArg(), attempt, mark.Milliseconds(), luntil, xuntil)
	for _, r := range recs {
		args = append(args, r.stateID)
	}
	for _, r := range recs {
		args = append(args, r.key.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	args[0] = sp.width.Milliseconds()
	vals, err := releaseScript.Run(ctx, s.rdb, []string{s.root(sp)}, args...).Int64Slice()
	if err != nil {
		return 0, err
	}
	if len(vals) != 1 {
		return 0, fmt.Errorf("consume: release script answered %d values", len(vals))
	}
	return vals[0], nil
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
