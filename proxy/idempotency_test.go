package proxy

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

func TestRedisIdempotency(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client()
	s := NewRedisIdempotency(rdb, time.Hour, time.Minute, 2*time.Second)
	ctx := context.Background()
	res := Result{UID: "u1", MessageID: "1:2:-1:0", Status: produce.StatusPersisted, Cluster: "primary"}

	c, err := s.Begin(ctx, "app", "k", "fp1", "u1")
	require.NoError(t, err)
	assert.Equal(t, Claim{State: ClaimAcquired, UID: "u1", Owner: c.Owner, Fresh: true}, c)
	ttl := rdb.PTTL(ctx, KeyPrefix+"app:k").Val()
	assert.InDelta(t, time.Minute.Seconds(), ttl.Seconds(), 2, "an in-flight claim lives inFlightTTL")

	busy, err := s.Begin(ctx, "app", "k", "fp1", "u2")
	require.NoError(t, err)
	assert.Equal(t, ClaimBusy, busy.State)
	mismatch, err := s.Begin(ctx, "app", "k", "fp2", "u2")
	require.NoError(t, err)
	assert.Equal(t, ClaimMismatch, mismatch.State)
	other, err := s.Begin(ctx, "other-app", "k", "fp2", "u3")
	require.NoError(t, err)
	assert.Equal(t, ClaimAcquired, other.State, "keys are per app")

	require.NoError(t, s.Complete(ctx, "app", "k", c.Owner, "fp1", res))
	done, err := s.Begin(ctx, "app", "k", "fp1", "u9")
	require.NoError(t, err)
	want := res
	want.Duplicate = true
	assert.Equal(t, Claim{State: ClaimDone, Result: want}, done)
	ttl = rdb.PTTL(ctx, KeyPrefix+"app:k").Val()
	assert.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 2, "a result lives ttl")

	// Release: forget deletes a fresh claim; otherwise failed keeps the uid
	// for the next attempt.
	c, err = s.Begin(ctx, "app", "f", "fp", "first-uid")
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, "app", "f", c.Owner, false))
	again, err := s.Begin(ctx, "app", "f", "fp", "second-uid")
	require.NoError(t, err)
	assert.Equal(t, ClaimAcquired, again.State)
	assert.Equal(t, "first-uid", again.UID)
	assert.False(t, again.Fresh)
	require.NoError(t, s.Release(ctx, "app", "f", "not-the-owner", true), "a stranger's release is ignored")
	require.NoError(t, s.Release(ctx, "app", "f", again.Owner, true))
	assert.Zero(t, rdb.Exists(ctx, KeyPrefix+"app:f").Val())

	// A late Complete after the claim expired still stores the result.
	c, err = s.Begin(ctx, "app", "late", "fp", "u")
	require.NoError(t, err)
	require.NoError(t, rdb.Del(ctx, KeyPrefix+"app:late").Err())
	require.NoError(t, s.Complete(ctx, "app", "late", c.Owner, "fp", res))
	done, err = s.Begin(ctx, "app", "late", "fp", "u")
	require.NoError(t, err)
	assert.Equal(t, ClaimDone, done.State)
	// ... but never overwrites another owner's claim.
	_, err = s.Begin(ctx, "app", "taken", "fp", "u")
	require.NoError(t, err)
	require.NoError(t, s.Complete(ctx, "app", "taken", "someone-else", "fp", res))
	busy, err = s.Begin(ctx, "app", "taken", "fp", "u")
	require.NoError(t, err)
	assert.Equal(t, ClaimBusy, busy.State)

	srv.Close()
	_, err = s.Begin(ctx, "app", "k", "fp1", "u")
	assert.True(t, errors.Is(err, ErrIdempotencyUnavailable), "%v", err)
}

// TestRedisIdempotencyRace: of many concurrent claims, exactly one wins.
func TestRedisIdempotencyRace(t *testing.T) {
	srv := testredis.Start(t)
	s := NewRedisIdempotency(srv.Client(), time.Hour, time.Minute, 5*time.Second)
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
