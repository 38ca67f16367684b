package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/redis/go-redis/v9"
)

// ErrIdempotencyUnavailable wraps every failure to reach the idempotency
// store. The produce path then produces without the check and flags the
// message (ADR 030).
var ErrIdempotencyUnavailable = errors.New("proxy: idempotency store unavailable")

// ClaimState is what Begin found for a key.
type ClaimState int

// Claim states.
const (
	// ClaimAcquired: this request owns the key and must produce, then call
	// Complete or Release.
	ClaimAcquired ClaimState = iota + 1
	// ClaimDone: an earlier request produced the message; Result is its answer.
	ClaimDone
	// ClaimBusy: another request holds the key right now.
	ClaimBusy
	// ClaimMismatch: the key was used for a different message.
	ClaimMismatch
)

// Claim is the outcome of Begin.
type Claim struct {
	State  ClaimState
	UID    string // ClaimAcquired: the uid to produce with (the key's uid)
	Result Result // ClaimDone
	Owner  string // ClaimAcquired: pass to Complete, Renew and Release
	// Fresh (ClaimAcquired): no earlier attempt existed. A claim taken over
	// from a failed attempt or from an owner whose lease ran out is not
	// fresh: the earlier attempt may have reached the broker, so the
	// message is produced with duplicateRisk (same uid).
	Fresh bool
}

// IdempotencyStore remembers the first result for (app, key).
//
// A key moves through three states: in flight (one request owns it under a
// lease and is producing), done (the result is stored) and failed (the
// owner could not make the message durable). An in-flight key whose lease
// ran out, or a failed one, is taken over by the next attempt, which keeps
// the key's uid. Every method is safe for concurrent use across goroutines
// and processes.
type IdempotencyStore interface {
	// Begin claims key for a message with the given fingerprint, proposing
	// uid. Errors wrap ErrIdempotencyUnavailable.
	Begin(ctx context.Context, app, key, fingerprint, uid string) (Claim, error)
	// Lease is how long a claim stays its owner's without a Renew.
	Lease() time.Duration
	// Renew extends an acquired claim's lease; false when the claim is no
	// longer this owner's.
	Renew(ctx context.Context, app, key, owner string) (bool, error)
	// Complete stores the result of an acquired key for TTL.
	Complete(ctx context.Context, app, key, owner, fingerprint string, r Result) error
	// CompleteAsync is Complete without waiting: done receives Complete's
	// error once the result is stored (or not). It is called exactly once,
	// on any goroutine, and must not block; CompleteAsync itself does not
	// block, so a Sender's callback may call it.
	CompleteAsync(app, key, owner, fingerprint string, r Result, done func(error))
	// Release gives an acquired key up: forget deletes a fresh claim (nothing
	// was sent), otherwise the key becomes failed and keeps its uid.
	Release(ctx context.Context, app, key, owner string, forget bool) error
}

// RedisIdempotency is the IdempotencyStore on Redis (ADR 030). Each key is
// one string psc:idem:<app>:<key> holding a record
//
//	state|owner|leaseUntilMillis|fingerprint|uid|result
//
// with state i (in flight), f (failed) or d (done; result is the answer's
// JSON). The record lives for the result TTL from the first claim on; the
// owner's lease is a time inside it, so a dead owner's key is taken over as
// soon as the lease ends while the uid stays. Begin is one SET NX GET, and
// calls of concurrent requests share Redis round trips (see batcher).
// Records written as hashes by earlier versions are still read (and a
// failed one is converted on takeover), so replicas can be upgraded one by
// one.
type RedisIdempotency struct {
	rdb     redisPipeliner
	ttl     time.Duration
	lease   time.Duration
	timeout time.Duration
	now     func() time.Time
	batch   *batcher

	owners ownerNames
}

// ownerNames names claims' owners: a random prefix per store, so owners of
// two processes never collide, and a counter.
type ownerNames struct {
	prefix string
	n      atomic.Uint64
}

// ownerPrefix is a new random prefix for ownerNames.
func ownerPrefix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-"
}

// next is a new owner's name, one allocation (it was 12 bytes of
// crypto/rand per claim).
func (o *ownerNames) next() string {
	var b [48]byte
	n := append(b[:0], o.prefix...)
	return string(strconv.AppendUint(n, o.n.Add(1), 36))
}

// redisPipeliner is what the store needs of a go-redis client
// (*redis.Client, *redis.ClusterClient, redis.UniversalClient).
type redisPipeliner interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
}

var _ IdempotencyStore = (*RedisIdempotency)(nil)

// NewRedisIdempotency returns a store on rdb. Results live for ttl; an
// owner's lease lasts lease (renewed while it sends, see Renew), so a key
// whose owner died is taken over after at most lease; each call gives up
// after timeout.
func NewRedisIdempotency(rdb redisPipeliner, ttl, lease, timeout time.Duration) *RedisIdempotency {
	return &RedisIdempotency{rdb: rdb, ttl: ttl, lease: lease, timeout: timeout, now: time.Now, batch: newBatcher(rdb, ttl),
		owners: ownerNames{prefix: ownerPrefix()}}
}

// Lease is how long a claim stays its owner's without a Renew.
func (s *RedisIdempotency) Lease() time.Duration { return s.lease }

// KeyPrefix starts every Redis key the store writes.
const KeyPrefix = "psc:idem:"

func redisKey(app, key string) string { return KeyPrefix + app + ":" + key }

// record is a parsed stored value.
type record struct {
	state      byte // 'i', 'f' or 'd'
	owner      string
	leaseUntil int64 // Unix milliseconds
	fp, uid    string
	result     string
}

func (r record) encode() string {
	var b strings.Builder
	b.Grow(len(r.owner) + len(r.fp) + len(r.uid) + len(r.result) + 24)
	b.WriteByte(r.state)
	b.WriteByte('|')
	b.WriteString(r.owner)
	b.WriteByte('|')
	var n [20]byte
	b.Write(strconv.AppendInt(n[:0], r.leaseUntil, 10))
	b.WriteByte('|')
	b.WriteString(r.fp)
	b.WriteByte('|')
	b.WriteString(r.uid)
	b.WriteByte('|')
	b.WriteString(r.result)
	return b.String()
}

// parseRecord reads a stored value; the result (last) may hold any byte.
func parseRecord(v string) (record, error) {
	f := strings.SplitN(v, "|", 6)
	if len(f) != 6 || len(f[0]) != 1 || !strings.Contains("ifd", f[0]) {
		return record{}, fmt.Errorf("%w: unreadable record %q", ErrIdempotencyUnavailable, truncate(v, 80))
	}
	until, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return record{}, fmt.Errorf("%w: unreadable lease in record %q", ErrIdempotencyUnavailable, truncate(v, 80))
	}
	return record{state: f[0][0], owner: f[1], leaseUntil: until, fp: f[3], uid: f[4], result: f[5]}, nil
}

// beginScript is Begin for servers older than Redis 7.0, which refuse SET
// with both NX and GET.
var beginScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
`)

// casScript replaces the value ARGV[1] with ARGV[2], keeping the key's
// TTL. It answers false when it did, otherwise the value found (” when
// the key is gone).
var casScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v ~= ARGV[1] then return v or '' end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return false
`)

// ownerScript changes a claim only while ARGV[1] owns it (its record
// starts "i|<owner>|"): ARGV[2] "renew" sets the lease to ARGV[3] keeping
// the TTL; "fail" makes the record failed; "forget" deletes it. 1: done;
// 0: the claim is not this owner's.
var ownerScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
local op = ARGV[2]
if not v then return 0 end
local pre = 'i|' .. ARGV[1] .. '|'
if string.sub(v, 1, string.len(pre)) ~= pre then return 0 end
if op == 'forget' then
  redis.call('DEL', KEYS[1])
  return 1
end
local rest = string.sub(v, string.len(pre) + 1)
local tail = string.sub(rest, (string.find(rest, '|', 1, true) or 0) + 1)
local ttl = redis.call('PTTL', KEYS[1])
if op == 'renew' then
  redis.call('SET', KEYS[1], pre .. ARGV[3] .. '|' .. tail)
else
  redis.call('SET', KEYS[1], 'f||0|' .. tail)
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`)

// legacyScript reads a record written as a hash by an earlier version.
// A failed one is converted to an in-flight record (ARGV[1] .. fp .. '|' ..
// uid .. '|') owned by the caller, keeping its uid and TTL. It answers
// {state, fp, uid, result}; state "acquired" when converted, "gone" when
// the key is not a hash (any more).
var legacyScript = redis.NewScript(`
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return {'gone', '', '', ''} end
local h = redis.call('HMGET', KEYS[1], 'state', 'fp', 'uid', 'result')
local st, fp, uid, res = h[1] or '', h[2] or '', h[3] or '', h[4] or ''
if st == 'failed' and fp == ARGV[2] then
  local ttl = redis.call('PTTL', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[1], ARGV[1] .. fp .. '|' .. uid .. '|')
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
  return {'acquired', fp, uid, ''}
end
return {st, fp, uid, res}
`)

// storedResult is what the store keeps of a Result.
type storedResult struct {
	UID       string `json:"uid"`
	MessageID string `json:"messageId,omitempty"`
	Status    string `json:"status"`
	Cluster   string `json:"cluster,omitempty"`
	DeliverAt string `json:"deliverAt,omitempty"`
}

// deadline is when a call made now gives up: the store's timeout, or
// ctx's deadline when that comes first.
func (s *RedisIdempotency) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(s.timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

func (s *RedisIdempotency) unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
}

func (s *RedisIdempotency) leaseUntil() int64 { return s.now().Add(s.lease).UnixMilli() }

// Begin implements IdempotencyStore.
func (s *RedisIdempotency) Begin(ctx context.Context, app, key, fp, uid string) (Claim, error) {
	dl := s.deadline(ctx)
	k := redisKey(app, key)
	owner := s.owners.next()
	mine := record{state: 'i', owner: owner, leaseUntil: s.leaseUntil(), fp: fp, uid: uid}
	old, err := s.setNXGet(ctx, dl, k, mine.encode())
	switch {
	case errors.Is(err, redis.Nil):
		return Claim{State: ClaimAcquired, UID: uid, Owner: owner, Fresh: true}, nil
	case err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE"):
		return s.beginLegacy(ctx, dl, k, owner, fp)
	case err != nil:
		return Claim{}, s.unavailable(err)
	}
	// The key exists: answer from it, or take it over. A takeover that
	// loses a race reads the value that won and decides again.
	for range 3 {
		r, err := parseRecord(old)
		if err != nil {
			return Claim{}, err
		}
		if c, takeover, err := judge(r, fp, s.now().UnixMilli()); !takeover {
			return c, err
		}
		// Failed, or in flight under a lease that ran out: the owner gave
		// up or died. Take over, keeping the key's uid.
		mine.uid = r.uid
		mine.leaseUntil = s.leaseUntil()
		found, err := s.evalUntil(ctx, dl, casScript, k, old, mine.encode())
		if errors.Is(err, redis.Nil) {
			return Claim{State: ClaimAcquired, UID: r.uid, Owner: owner}, nil
		}
		if err != nil {
			return Claim{}, s.unavailable(err)
		}
		v, ok := found.(string)
		if !ok {
			return Claim{}, fmt.Errorf("%w: unexpected reply %v", ErrIdempotencyUnavailable, found)
		}
		if v == "" {
			// The key expired or was deleted meanwhile: claim it afresh.
			mine.uid = uid
			old, err = s.setNXGet(ctx, dl, k, mine.encode())
			if errors.Is(err, redis.Nil) {
				return Claim{State: ClaimAcquired, UID: uid, Owner: owner, Fresh: true}, nil
			}
			if err != nil {
				return Claim{}, s.unavailable(err)
			}
			continue
		}
		old = v
	}
	return Claim{State: ClaimBusy}, nil
}

// setNXGet is SET k v NX GET PX ttl: redis.Nil when it set the key, else
// the value found.
func (s *RedisIdempotency) setNXGet(ctx context.Context, dl time.Time, k, v string) (string, error) {
	if !s.batch.oldServer.Load() {
		c := getCall()
		c.kind, c.key, c.val, c.deadline = callSetNXGet, k, v, dl
		if err := s.batch.wait(ctx, c); err != nil {
			return "", err
		}
		old, err := c.str, c.err
		putCall(c)
		if err == nil || errors.Is(err, redis.Nil) || !strings.Contains(strings.ToLower(err.Error()), "syntax") {
			return old, err
		}
		s.batch.oldServer.Store(true) // Redis before 7.0
	}
	res, err := s.evalUntil(ctx, dl, beginScript, k, v, strconv.FormatInt(s.ttl.Milliseconds(), 10))
	if err != nil {
		return "", err
	}
	old, ok := res.(string)
	if !ok {
		return "", fmt.Errorf("unexpected reply %v", res)
	}
	return old, nil
}

// eval runs a script through the batcher: EVALSHA, and EVAL when Redis
// does not know the script yet.
func (s *RedisIdempotency) eval(ctx context.Context, sc *redis.Script, k string, args ...any) (any, error) {
	return s.evalUntil(ctx, s.deadline(ctx), sc, k, args...)
}

// evalUntil is eval giving up at dl.
func (s *RedisIdempotency) evalUntil(ctx context.Context, dl time.Time, sc *redis.Script, k string, args ...any) (any, error) {
	var cmd *redis.Cmd
	err := s.batch.do(ctx, dl, func(p redis.Pipeliner) { cmd = sc.EvalSha(ctx, p, []string{k}, args...) })
	if err != nil {
		return nil, err
	}
	res, err := cmd.Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		ctx, cancel := context.WithDeadline(ctx, dl)
		defer cancel()
		return sc.Run(ctx, s.rdb, []string{k}, args...).Result()
	}
	return res, err
}

// judge answers Begin from the record a key holds: mismatch, done or busy;
// or takeover when the record is failed, or in flight under a lease that
// ran out before nowMs.
func judge(r record, fp string, nowMs int64) (c Claim, takeover bool, err error) {
	switch {
	case r.fp != fp:
		return Claim{State: ClaimMismatch}, false, nil
	case r.state == 'd':
		c, err := doneClaim(r.result)
		return c, false, err
	case r.state == 'i' && r.leaseUntil > nowMs:
		return Claim{State: ClaimBusy}, false, nil
	}
	return Claim{}, true, nil
}

// doneClaim is the answer to a key that holds a result (stored: its JSON).
func doneClaim(stored string) (Claim, error) {
	var sr storedResult
	if err := json.Unmarshal([]byte(stored), &sr); err != nil {
		return Claim{}, fmt.Errorf("%w: stored result: %w", ErrIdempotencyUnavailable, err)
	}
	return Claim{State: ClaimDone, Result: Result{UID: sr.UID, MessageID: sr.MessageID, Status: produce.Status(sr.Status),
		Cluster: sr.Cluster, DeliverAt: sr.DeliverAt, Duplicate: true}}, nil
}

// beginLegacy answers a key stored as a hash by an earlier version.
func (s *RedisIdempotency) beginLegacy(ctx context.Context, dl time.Time, k, owner, fp string) (Claim, error) {
	prefix := "i|" + owner + "|" + strconv.FormatInt(s.leaseUntil(), 10) + "|"
	res, err := s.evalUntil(ctx, dl, legacyScript, k, prefix, fp)
	if err != nil {
		return Claim{}, s.unavailable(err)
	}
	f, ok := res.([]any)
	if !ok || len(f) != 4 {
		return Claim{}, fmt.Errorf("%w: unexpected reply %v", ErrIdempotencyUnavailable, res)
	}
	st, _ := f[0].(string)
	hfp, _ := f[1].(string)
	uid, _ := f[2].(string)
	result, _ := f[3].(string)
	switch {
	case st == "gone":
		return Claim{State: ClaimBusy}, nil // rewritten meanwhile: the caller polls again
	case hfp != fp:
		return Claim{State: ClaimMismatch}, nil
	case st == "acquired":
		return Claim{State: ClaimAcquired, UID: uid, Owner: owner}, nil
	case st == "done":
		return doneClaim(result)
	}
	return Claim{State: ClaimBusy}, nil // in flight: the old version's hash expires after its one-minute claim
}

// Renew implements IdempotencyStore.
func (s *RedisIdempotency) Renew(ctx context.Context, app, key, owner string) (bool, error) {
	res, err := s.eval(ctx, ownerScript, redisKey(app, key), owner, "renew", strconv.FormatInt(s.leaseUntil(), 10))
	if err != nil {
		return false, s.unavailable(err)
	}
	return res == int64(1), nil
}

// Complete implements IdempotencyStore: a plain SET of the done record for
// ttl, whatever the key holds (no script: it is on every keyed message's
// path). It stores the result even when the key is gone meanwhile, so a
// late retry still finds it. When another attempt took the key over after
// this owner's lease ended, the two results overwrite each other: both
// describe a copy carrying the key's uid, so either answers a retry
// truthfully.
func (s *RedisIdempotency) Complete(ctx context.Context, app, key, owner, fp string, r Result) error {
	c := getCall()
	c.kind, c.key, c.val, c.deadline = callSet, redisKey(app, key), doneRecord(fp, &r), s.deadline(ctx)
	if err := s.batch.wait(ctx, c); err != nil {
		return s.unavailable(err)
	}
	err := c.err
	putCall(c)
	if err != nil {
		return s.unavailable(err)
	}
	return nil
}

// CompleteAsync implements IdempotencyStore: Complete answered through
// done, which the batcher's flush calls (ADR 030, "Group commit").
func (s *RedisIdempotency) CompleteAsync(app, key, owner, fp string, r Result, done func(error)) {
	c := getCall()
	c.kind, c.key, c.val, c.deadline = callSet, redisKey(app, key), doneRecord(fp, &r), time.Now().Add(s.timeout)
	c.then = func(err error) {
		if err != nil {
			err = s.unavailable(err)
		}
		done(err)
	}
	s.batch.answerLater(c)
}

var recordBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// doneRecord is the done record of r, "d||0|fp|uid|{storedResult JSON}",
// built in one allocation (the JSON as encoding/json would write
// storedResult: appendResult of the same fields).
func doneRecord(fp string, r *Result) string {
	bp := recordBufs.Get().(*[]byte)
	b := append((*bp)[:0], "d||0|"...)
	b = append(b, fp...)
	b = append(b, '|')
	b = append(b, r.UID...)
	b = append(b, '|')
	b = appendResult(b, &Result{UID: r.UID, MessageID: r.MessageID, Status: r.Status, Cluster: r.Cluster, DeliverAt: r.DeliverAt})
	v := string(b)
	*bp = b
	recordBufs.Put(bp)
	return v
}

// Release implements IdempotencyStore.
func (s *RedisIdempotency) Release(ctx context.Context, app, key, owner string, forget bool) error {
	op := "fail"
	if forget {
		op = "forget"
	}
	if _, err := s.eval(ctx, ownerScript, redisKey(app, key), owner, op); err != nil {
		return s.unavailable(err)
	}
	return nil
}
