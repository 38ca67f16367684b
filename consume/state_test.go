package consume

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
)

// The bucket layout with 300 ms buckets, on a real redis-server and on
// miniredis (the embedded mode's Redis runs the same scripts in another Lua):
// an entry that must outlive its bucket (a lease kept longer than a window)
// is still found buckets later with its delivery count, a later change
// wins over the copies written ahead, and an entry is forgotten once its
// need and a window have passed.
func TestStateBuckets(t *testing.T) {
	t.Run("redis-server", func(t *testing.T) {
		t.Parallel()
		testStateBuckets(t, testredis.Start(t).Client())
	})
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		testStateBuckets(t, rdb)
	})
}

func testStateBuckets(t *testing.T, rdb *redis.Client) {
	ctx := context.Background()
	st := &states{rdb: rdb, prefix: "t:", timeout: 5 * time.Second, dedup: 300 * time.Millisecond}
	sp := space{binding: 42, width: 300 * time.Millisecond} // as with a short ack timeout
	require.NoError(t, st.load(ctx))
	const copyID = "0:1:2:0:-1"
	now := time.Now().UnixMilli()
	lease := func(keep time.Duration, now int64) leaseResult {
		t.Helper()
		vals, err := st.eval(ctx, leaseScript, sp, 1,
			[]any{st.widthArg(), now, int64(100), 16, int64(1000), keep.Milliseconds(), "attempt-" + strconv.FormatInt(now, 10), "uid-1", copyID}, 4)
		require.NoError(t, err)
		return parseLeases(vals)[0]
	}
	ack := func() int64 {
		t.Helper()
		vals, err := st.eval(ctx, ackScript, sp, 1, []any{st.widthArg(), "uid-1", copyID}, 1)
		require.NoError(t, err)
		return vals[0]
	}

	// A lease whose state must stay 2 s: written to the buckets ahead.
	r := lease(2*time.Second, now)
	require.Equal(t, leaseDeliver, r.outcome)
	require.Equal(t, 1, r.n)
	keys, err := rdb.Keys(ctx, st.root(sp)+"*").Result()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(keys), 6, "2 s of 300 ms buckets ahead")

	// Three buckets later the count is still there.
	time.Sleep(time.Second)
	now += 1000
	r = lease(2*time.Second, now)
	require.Equal(t, leaseDeliver, r.outcome)
	require.Equal(t, 2, r.n, "the delivery count survived its first bucket")

	// An ack now wins over the lease copies written ahead, later too.
	require.EqualValues(t, ackDone, ack())
	time.Sleep(700 * time.Millisecond)
	now += 700
	r = lease(2*time.Second, now)
	require.Equal(t, leaseConsumed, r.outcome, "the ack, not the older lease, is found")
	require.EqualValues(t, ackAlready, ack())

	// Past its need (3 s from the first lease) and a window, it is gone.
	time.Sleep(2 * time.Second)
	now += 2000
	r = lease(0, now)
	require.Equal(t, leaseDeliver, r.outcome)
	require.Equal(t, 1, r.n, "forgotten after its need and a window")

	// A short-lived entry (keep 0) lives one to two windows.
	time.Sleep(700 * time.Millisecond)
	now += 700
	r = lease(0, now)
	require.Equal(t, leaseDeliver, r.outcome)
	require.Equal(t, 1, r.n)
	for _, k := range keys {
		ttl, err := rdb.PTTL(ctx, k).Result()
		require.NoError(t, err)
		require.LessOrEqual(t, ttl, time.Minute+3*time.Second, "buckets expire two widths and a minute after they begin")
	}
}

// A long ack timeout widens the buckets instead of writing leases ahead.
func TestStateSpaceWidth(t *testing.T) {
	st := &states{dedup: 10 * time.Minute}
	require.Equal(t, 10*time.Minute, st.space(1, 30*time.Second).width)
	require.Equal(t, 10*time.Minute, st.space(1, 4*time.Minute+30*time.Second).width)
	require.Equal(t, 2*time.Hour+time.Minute, st.space(1, time.Hour).width)
	require.NotEqual(t, st.root(st.space(1, 30*time.Second)), st.root(st.space(1, time.Hour)), "the width is in the key")
}

// A replica that finds delivery state of the old layout says so when it
// starts: an older replica may still be consuming (ADR 060, upgrading).
func TestLegacyStateWarning(t *testing.T) {
	e := newEnv(t)
	var quiet, loud syncBuffer
	e.node(func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&quiet, nil)) })
	require.NotContains(t, quiet.String(), "one-key-per-message")
	require.NoError(t, e.rdb.Set(context.Background(), "psc:cs:{00000000000000aa}:some-uid", "a|0|1|0:1:2:0:0", time.Minute).Err())
	e.node(func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&loud, nil)) })
	require.Contains(t, loud.String(), "one-key-per-message")
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
