package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
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
	UID    string // ClaimAcquired: the uid to produce with (kept from a failed earlier attempt)
	Result Result // ClaimDone
	Owner  string // ClaimAcquired: pass to Complete / Release
	Fresh  bool   // ClaimAcquired: no earlier attempt existed
}

// IdempotencyStore remembers the first result for (app, key).
//
// A key moves through three states: in flight (one request owns it and is
// producing), done (the result is stored) and failed (the owner could not
// make the message durable; the next attempt takes over and keeps the uid).
// Every method is safe for concurrent use across goroutines and processes.
type IdempotencyStore interface {
	// Begin claims key for a message with the given fingerprint, proposing
	// uid. Errors wrap ErrIdempotencyUnavailable.
	Begin(ctx context.Context, app, key, fingerprint, uid string) (Claim, error)
	// Complete stores the result of an acquired key for TTL.
	Complete(ctx context.Context, app, key, owner, fingerprint string, r Result) error
	// Release gives an acquired key up: forget deletes a fresh claim (nothing
	// was sent), otherwise the key becomes failed and keeps its uid.
	Release(ctx context.Context, app, key, owner string, forget bool) error
}

// RedisIdempotency is the IdempotencyStore on Redis. Each key is a hash
// psc:idem:{app}:{key} with fields state, fp (fingerprint), uid, owner and
// result (JSON), changed only by Lua scripts so every transition is atomic.
type RedisIdempotency struct {
	rdb         redis.Scripter
	ttl         time.Duration
	inFlightTTL time.Duration
	timeout     time.Duration
}

var _ IdempotencyStore = (*RedisIdempotency)(nil)

// NewRedisIdempotency returns a store on rdb. Results live for ttl; an
// in-flight claim whose owner died blocks retries for inFlightTTL; each
// call gives up after timeout.
func NewRedisIdempotency(rdb redis.Scripter, ttl, inFlightTTL, timeout time.Duration) *RedisIdempotency {
	return &RedisIdempotency{rdb: rdb, ttl: ttl, inFlightTTL: inFlightTTL, timeout: timeout}
}

// KeyPrefix starts every Redis key the store writes.
const KeyPrefix = "psc:idem:"

func redisKey(app, key string) string { return KeyPrefix + app + ":" + key }

var beginScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then
  redis.call('HSET', KEYS[1], 'state', 'inflight', 'fp', ARGV[1], 'uid', ARGV[2], 'owner', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'acquired', ARGV[2], '1'}
end
if redis.call('HGET', KEYS[1], 'fp') ~= ARGV[1] then
  return {'mismatch', '', ''}
end
if st == 'done' then
  return {'done', redis.call('HGET', KEYS[1], 'result'), ''}
end
if st == 'inflight' then
  return {'busy', '', ''}
end
redis.call('HSET', KEYS[1], 'state', 'inflight', 'owner', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'acquired', redis.call('HGET', KEYS[1], 'uid'), '0'}
`)

var completeScript = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then
  return 0
end
if not owner and redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'done', 'fp', ARGV[4], 'result', ARGV[2])
redis.call('HDEL', KEYS[1], 'owner')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

var releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'state', 'failed')
redis.call('HDEL', KEYS[1], 'owner')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// storedResult is what the store keeps of a Result.
type storedResult struct {
	UID       string         `json:"uid"`
	MessageID string         `json:"messageId,omitempty"`
	Status    produce.Status `json:"status"`
	Cluster   string         `json:"cluster,omitempty"`
	DeliverAt string         `json:"deliverAt,omitempty"`
}

func newOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Begin implements IdempotencyStore.
func (s *RedisIdempotency) Begin(ctx context.Context, app, key, fp, uid string) (Claim, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	owner := newOwner()
	res, err := beginScript.Run(ctx, s.rdb, []string{redisKey(app, key)},
		fp, uid, owner, strconv.FormatInt(s.inFlightTTL.Milliseconds(), 10)).StringSlice()
	if err != nil {
		return Claim{}, fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
	}
	if len(res) != 3 {
		return Claim{}, fmt.Errorf("%w: unexpected reply %q", ErrIdempotencyUnavailable, res)
	}
	switch res[0] {
	case "acquired":
		return Claim{State: ClaimAcquired, UID: res[1], Owner: owner, Fresh: res[2] == "1"}, nil
	case "done":
		var sr storedResult
		if err := json.Unmarshal([]byte(res[1]), &sr); err != nil {
			return Claim{}, fmt.Errorf("%w: stored result: %w", ErrIdempotencyUnavailable, err)
		}
		return Claim{State: ClaimDone, Result: Result{UID: sr.UID, MessageID: sr.MessageID, Status: sr.Status,
			Cluster: sr.Cluster, DeliverAt: sr.DeliverAt, Duplicate: true}}, nil
	case "busy":
		return Claim{State: ClaimBusy}, nil
	case "mismatch":
		return Claim{State: ClaimMismatch}, nil
	}
	return Claim{}, fmt.Errorf("%w: unexpected reply %q", ErrIdempotencyUnavailable, res)
}

// Complete implements IdempotencyStore. It stores the result even when the
// claim expired meanwhile and nobody else took the key, so a late retry
// still finds it; it does not overwrite another owner's claim.
func (s *RedisIdempotency) Complete(ctx context.Context, app, key, owner, fp string, r Result) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	data, err := json.Marshal(storedResult{UID: r.UID, MessageID: r.MessageID, Status: r.Status, Cluster: r.Cluster, DeliverAt: r.DeliverAt})
	if err != nil {
		return err
	}
	_, err = completeScript.Run(ctx, s.rdb, []string{redisKey(app, key)},
		owner, data, strconv.FormatInt(s.ttl.Milliseconds(), 10), fp).Result()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
	}
	return nil
}

// Release implements IdempotencyStore.
func (s *RedisIdempotency) Release(ctx context.Context, app, key, owner string, forget bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	f := "0"
	if forget {
		f = "1"
	}
	_, err := releaseScript.Run(ctx, s.rdb, []string{redisKey(app, key)},
		owner, f, strconv.FormatInt(s.ttl.Milliseconds(), 10)).Result()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIdempotencyUnavailable, err)
	}
	return nil
}
