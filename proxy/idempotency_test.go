package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/fakeclock"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

func TestRedisIdempotency(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client()
	s := NewRedisIdempotency(rdb, time.Hour, time.Minute, 2*time.Second)
	ctx := context.Background()
	testStoreSemantics(t, s, storeAccess{
		ttl:    func(k string) time.Duration { return rdb.PTTL(ctx, k).Val() },
		exists: func(k string) bool { return rdb.Exists(ctx, k).Val() == 1 },
		del:    func(k string) { require.NoError(t, rdb.Del(ctx, k).Err()) },
	})

	srv.Close()
	_, err := s.Begin(ctx, "app", "k", "fp1", "u")
	assert.True(t, errors.Is(err, ErrIdempotencyUnavailable), "%v", err)
}

// storeAccess reaches a store's records beside its interface: a key's
// remaining TTL, whether it exists, and deleting it.
type storeAccess struct {
	ttl    func(key string) time.Duration
	exists func(key string) bool
	del    func(key string)
}

// testStoreSemantics is what every IdempotencyStore does (ADR 030), for
// a store with a one-hour TTL and a one-minute lease.
func testStoreSemantics(t *testing.T, s IdempotencyStore, raw storeAccess) {
	ctx := context.Background()
	res := Result{UID: "u1", MessageID: "1:2:-1:0", Status: produce.StatusPersisted, Cluster: "primary"}

	c, err := s.Begin(ctx, "app", "k", "fp1", "u1")
	require.NoError(t, err)
	assert.Equal(t, Claim{State: ClaimAcquired, UID: "u1", Owner: c.Owner, Fresh: true}, c)
	ttl := raw.ttl(KeyPrefix + "app:k")
	assert.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 2, "a key's record lives ttl from its first claim on; the lease is inside it")

	busy, err := s.Begin(ctx, "app", "k", "fp1", "u2")
	require.NoError(t, err)
	assert.Equal(t, ClaimBusy, busy.State)
	mismatch, err := s.Begin(ctx, "app", "k", "fp2", "u2")
	require.NoError(t, err)
	assert.Equal(t, ClaimMismatch, mismatch.State)
	other, err := s.Begin(ctx, "other-app", "k", "fp2", "u3")
	require.NoError(t, err)
	assert.Equal(t, ClaimAcquired, other.State, "keys are per app")

	ok, err := s.Renew(ctx, "app", "k", c.Owner)
	require.NoError(t, err)
	assert.True(t, ok, "the owner renews its lease")
	ok, err = s.Renew(ctx, "app", "k", "not-the-owner")
	require.NoError(t, err)
	assert.False(t, ok)

	require.NoError(t, s.Complete(ctx, "app", "k", c.Owner, "fp1", res))
	done, err := s.Begin(ctx, "app", "k", "fp1", "u9")
	require.NoError(t, err)
	want := res
	want.Duplicate = true
	assert.Equal(t, Claim{State: ClaimDone, Result: want}, done)
	ttl = raw.ttl(KeyPrefix + "app:k")
	assert.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 2, "a result lives ttl")
	ok, err = s.Renew(ctx, "app", "k", c.Owner)
	require.NoError(t, err)
	assert.False(t, ok, "a done key has no lease to renew")

	// Release: forget deletes a fresh claim; otherwise failed keeps the uid
	// for the next attempt, which is not fresh.
	c, err = s.Begin(ctx, "app", "f", "fp", "first-uid")
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, "app", "f", c.Owner, false))
	again, err := s.Begin(ctx, "app", "f", "fp", "second-uid")
	require.NoError(t, err)
	assert.Equal(t, ClaimAcquired, again.State)
	assert.Equal(t, "first-uid", again.UID)
	assert.False(t, again.Fresh)
	require.NoError(t, s.Release(ctx, "app", "f", "not-the-owner", true), "a stranger's release is ignored")
	assert.True(t, raw.exists(KeyPrefix+"app:f"))
	require.NoError(t, s.Release(ctx, "app", "f", again.Owner, true))
	assert.False(t, raw.exists(KeyPrefix+"app:f"))

	// A late Complete after the key vanished still stores the result.
	c, err = s.Begin(ctx, "app", "late", "fp", "u")
	require.NoError(t, err)
	raw.del(KeyPrefix + "app:late")
	require.NoError(t, s.Complete(ctx, "app", "late", c.Owner, "fp", res))
	done, err = s.Begin(ctx, "app", "late", "fp", "u")
	require.NoError(t, err)
	assert.Equal(t, ClaimDone, done.State)
	// ... and a result stored by another attempt (one that took the key
	// over: same uid) answers retries too.
	_, err = s.Begin(ctx, "app", "taken", "fp", "u")
	require.NoError(t, err)
	require.NoError(t, s.Complete(ctx, "app", "taken", "someone-else", "fp", res))
	done, err = s.Begin(ctx, "app", "taken", "fp", "u")
	require.NoError(t, err)
	assert.Equal(t, ClaimDone, done.State)
}

// TestRedisIdempotencyLeaseTakeover: a claim whose owner stopped renewing
// is taken over once its lease ends, keeping the uid; the old owner can
// then not renew; both owners' results describe a copy with the key's
// uid, and the last one stored answers retries.
func TestRedisIdempotencyLeaseTakeover(t *testing.T) {
	srv := testredis.Start(t)
	s := NewRedisIdempotency(srv.Client(), time.Hour, time.Minute, 2*time.Second)
	clock := fakeclock.New(time.Now())
	s.now = clock.Now
	testLeaseTakeover(t, s, clock)
}

// testLeaseTakeover: the lease takeover of a store with a one-minute
// lease whose clock is clock.
func testLeaseTakeover(t *testing.T, s IdempotencyStore, clock *fakeclock.Clock) {
	ctx := context.Background()

	first, err := s.Begin(ctx, "app", "k", "fp", "the-uid")
	require.NoError(t, err)
	clock.Advance(59 * time.Second)
	busy, err := s.Begin(ctx, "app", "k", "fp", "other-uid")
	require.NoError(t, err)
	assert.Equal(t, ClaimBusy, busy.State, "within the lease the key is the owner's")

	clock.Advance(2 * time.Second) // the owner died: no renewal
	second, err := s.Begin(ctx, "app", "k", "fp", "other-uid")
	require.NoError(t, err)
	assert.Equal(t, ClaimAcquired, second.State)
	assert.Equal(t, "the-uid", second.UID, "a takeover keeps the key's uid")
	assert.False(t, second.Fresh, "the first attempt may have reached the broker")

	ok, err := s.Renew(ctx, "app", "k", first.Owner)
	require.NoError(t, err)
	assert.False(t, ok, "the first owner lost its claim")
	require.NoError(t, s.Complete(ctx, "app", "k", first.Owner, "fp", Result{UID: "the-uid", MessageID: "1:1:0:0", Status: produce.StatusPersisted}))
	firstDone, err := s.Begin(ctx, "app", "k", "fp", "x")
	require.NoError(t, err)
	assert.Equal(t, "1:1:0:0", firstDone.Result.MessageID, "the first copy's result answers meanwhile")
	assert.Equal(t, "the-uid", firstDone.Result.UID)
	require.NoError(t, s.Complete(ctx, "app", "k", second.Owner, "fp", Result{UID: "the-uid", MessageID: "1:2:0:0", Status: produce.StatusPersisted}))
	done, err := s.Begin(ctx, "app", "k", "fp", "x")
	require.NoError(t, err)
	assert.Equal(t, "1:2:0:0", done.Result.MessageID)
}

// TestCASScriptOnAVanishedKey: a takeover whose key expired between the
// read and the compare-and-set is told so (”) and creates nothing, so
// Begin claims the key afresh instead of owning a claim with no record.
func TestCASScriptOnAVanishedKey(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client()
	s := NewRedisIdempotency(rdb, time.Hour, time.Minute, 2*time.Second)
	ctx := context.Background()
	got, err := s.eval(ctx, casScript, KeyPrefix+"app:gone", "f||0|fp|uid|", "i|me|1|fp|uid|")
	require.NoError(t, err)
	assert.Equal(t, "", got)
	assert.Zero(t, rdb.Exists(ctx, KeyPrefix+"app:gone").Val())
	require.NoError(t, rdb.Set(ctx, KeyPrefix+"app:other", "d||0|fp|uid|{}", time.Hour).Err())
	got, err = s.eval(ctx, casScript, KeyPrefix+"app:other", "f||0|fp|uid|", "i|me|1|fp|uid|")
	require.NoError(t, err)
	assert.Equal(t, "d||0|fp|uid|{}", got, "another value is answered, not replaced")
	_, err = s.eval(ctx, casScript, KeyPrefix+"app:other", "d||0|fp|uid|{}", "i|me|1|fp|uid|")
	require.ErrorIs(t, err, redis.Nil, "the expected value is replaced")
	assert.Equal(t, "i|me|1|fp|uid|", rdb.Get(ctx, KeyPrefix+"app:other").Val())
	assert.InDelta(t, time.Hour.Seconds(), rdb.PTTL(ctx, KeyPrefix+"app:other").Val().Seconds(), 5, "keeping its TTL")
}

// TestRedisIdempotencyLegacyHash: keys written as hashes by the previous
// version (a rolling upgrade) are answered: done gives the result, in
// flight is busy, failed is taken over keeping its uid and converted.
func TestRedisIdempotencyLegacyHash(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client()
	s := NewRedisIdempotency(rdb, time.Hour, time.Minute, 2*time.Second)
	ctx := context.Background()
	require.NoError(t, rdb.HSet(ctx, KeyPrefix+"app:done", "state", "done", "fp", "fp",
		"result", `{"uid":"old-uid","messageId":"3:4:0:0","status":"persisted"}`).Err())
	require.NoError(t, rdb.HSet(ctx, KeyPrefix+"app:busy", "state", "inflight", "fp", "fp", "uid", "old", "owner", "x").Err())
	require.NoError(t, rdb.HSet(ctx, KeyPrefix+"app:failed", "state", "failed", "fp", "fp", "uid", "failed-uid").Err())
	require.NoError(t, rdb.Expire(ctx, KeyPrefix+"app:failed", time.Hour).Err())

	d, err := s.Begin(ctx, "app", "done", "fp", "new")
	require.NoError(t, err)
	assert.Equal(t, Claim{State: ClaimDone, Result: Result{UID: "old-uid", MessageID: "3:4:0:0", Status: produce.StatusPersisted, Duplicate: true}}, d)
	m, err := s.Begin(ctx, "app", "done", "other-fp", "new")
	require.NoError(t, err)
	assert.Equal(t, ClaimMismatch, m.State)
	b, err := s.Begin(ctx, "app", "busy", "fp", "new")
	require.NoError(t, err)
	assert.Equal(t, ClaimBusy, b.State)
	f, err := s.Begin(ctx, "app", "failed", "fp", "new")
	require.NoError(t, err)
	assert.Equal(t, ClaimAcquired, f.State)
	assert.Equal(t, "failed-uid", f.UID)
	assert.Equal(t, "string", rdb.Type(ctx, KeyPrefix+"app:failed").Val(), "converted to the new record")
	assert.InDelta(t, time.Hour.Seconds(), rdb.PTTL(ctx, KeyPrefix+"app:failed").Val().Seconds(), 5, "keeping its TTL")
	require.NoError(t, s.Complete(ctx, "app", "failed", f.Owner, "fp", Result{UID: "failed-uid", Status: produce.StatusPersisted}))
	again, err := s.Begin(ctx, "app", "failed", "fp", "new")
	require.NoError(t, err)
	assert.Equal(t, ClaimDone, again.State)
}

// TestRedisIdempotencyGroupCommit: many concurrent calls share round
// trips: Redis sees fewer pipelines than calls, and every call gets its
// own answer.
func TestRedisIdempotencyGroupCommit(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client()
	var pipelines, cmds atomic.Int64
	rdb.AddHook(countHook{pipelines: &pipelines, cmds: &cmds})
	s := NewRedisIdempotency(rdb, time.Hour, time.Minute, 5*time.Second)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k := fmt.Sprint("k", i)
			c, err := s.Begin(context.Background(), "app", k, "fp", "uid-"+k)
			if assert.NoError(t, err) && assert.Equal(t, ClaimAcquired, c.State) {
				assert.Equal(t, "uid-"+k, c.UID)
				assert.NoError(t, s.Complete(context.Background(), "app", k, c.Owner, "fp", Result{UID: c.UID, Status: produce.StatusPersisted}))
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(2*n), cmds.Load(), "one SET NX GET and one SET per key, all pipelined")
	assert.Less(t, pipelines.Load(), int64(2*n), "concurrent calls share pipelines")
	t.Logf("%d commands in %d pipelines", cmds.Load(), pipelines.Load())
	for i := range n {
		d, err := s.Begin(context.Background(), "app", fmt.Sprint("k", i), "fp", "x")
		require.NoError(t, err)
		require.Equal(t, ClaimDone, d.State)
		require.Equal(t, fmt.Sprint("uid-k", i), d.Result.UID)
	}
}

// countHook counts pipelines and the commands sent in them.
type countHook struct{ pipelines, cmds *atomic.Int64 }

func (countHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipelines.Add(1)
		h.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestRedisIdempotencyRace: of many concurrent claims, exactly one wins.
func TestRedisIdempotencyRace(t *testing.T) {
	srv := testredis.Start(t)
	testRace(t, NewRedisIdempotency(srv.Client(), time.Hour, time.Minute, 5*time.Second))
}

func testRace(t *testing.T, s IdempotencyStore) {
	var mu sync.Mutex
	states := map[ClaimState]int{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			c, err := s.Begin(context.Background(), "app", "k", "fp", produce.NewUID())
			assert.NoError(t, err)
			mu.Lock()
			states[c.State]++
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, map[ClaimState]int{ClaimAcquired: 1, ClaimBusy: 49}, states)
}

// TestRedisIdempotencyPausedRedis: while Redis does not answer, a waiting
// call gives up at its own deadline (redis.timeout) and an answered one
// (CompleteAsync) is told within the round trip's bound; nothing blocks the
// caller of CompleteAsync; once Redis answers again both work, and the
// result stored late is there.
func TestRedisIdempotencyPausedRedis(t *testing.T) {
	srv := testredis.Start(t)
	const timeout = 300 * time.Millisecond
	s := NewRedisIdempotency(srv.Client(), time.Hour, 3*time.Second, timeout)
	ctx := context.Background()
	c, err := s.Begin(ctx, "app", "k", "fp", "uid")
	require.NoError(t, err)
	require.Equal(t, ClaimAcquired, c.State)

	srv.Pause()
	paused := true
	defer func() {
		if paused {
			srv.Resume()
		}
	}()
	t0 := time.Now()
	_, err = s.Begin(ctx, "app", "other", "fp", "uid2")
	took := time.Since(t0)
	require.ErrorIs(t, err, ErrIdempotencyUnavailable)
	assert.GreaterOrEqual(t, took, timeout-10*time.Millisecond)
	assert.Less(t, took, timeout+200*time.Millisecond, "a waiting call gives up at its own deadline")

	done := make(chan error, 1)
	t0 = time.Now()
	s.CompleteAsync("app", "k", c.Owner, "fp", Result{UID: "uid", MessageID: "1:2:0:0", Status: produce.StatusPersisted}, func(err error) { done <- err })
	assert.Less(t, time.Since(t0), 50*time.Millisecond, "CompleteAsync does not wait")
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrIdempotencyUnavailable)
		assert.Less(t, time.Since(t0), 2*timeout+300*time.Millisecond, "bounded by the round trip's deadline")
	case <-time.After(5 * time.Second):
		t.Fatal("CompleteAsync never answered while Redis was paused")
	}

	srv.Resume()
	paused = false
	require.Eventually(t, func() bool {
		done := make(chan error, 1)
		s.CompleteAsync("app", "k", c.Owner, "fp", Result{UID: "uid", MessageID: "1:2:0:0", Status: produce.StatusPersisted}, func(err error) { done <- err })
		return <-done == nil
	}, 5*time.Second, 50*time.Millisecond)
	d, err := s.Begin(ctx, "app", "k", "fp", "x")
	require.NoError(t, err)
	assert.Equal(t, Claim{State: ClaimDone, Result: Result{UID: "uid", MessageID: "1:2:0:0", Status: produce.StatusPersisted, Duplicate: true}}, d)
}

// TestDoneRecordIsStoredResultJSON: the done record's result is what
// encoding/json writes for storedResult, so records of this version and
// the previous one read alike.
func TestDoneRecordIsStoredResultJSON(t *testing.T) {
	for _, r := range []Result{
		{UID: "u", MessageID: "1:2:-1:0", Status: produce.StatusPersisted, Cluster: "primary"},
		{UID: "u\"<&>", Status: produce.StatusScheduled, DeliverAt: "2026-12-06T10:00:00Z", DuplicateRisk: true, Duplicate: true},
		{UID: "u", Status: produce.StatusSpooled},
	} {
		want, err := json.Marshal(storedResult{UID: r.UID, MessageID: r.MessageID, Status: string(r.Status), Cluster: r.Cluster, DeliverAt: r.DeliverAt})
		require.NoError(t, err)
		rec, err := parseRecord(doneRecord("fp", &r))
		require.NoError(t, err)
		assert.Equal(t, record{state: 'd', fp: "fp", uid: r.UID, result: string(want)}, rec)
	}
}
