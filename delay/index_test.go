package delay

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// fakeClock is controlled time shared by wheels, indexes and schedulers in
// tests. It implements Clock: After fires when Set or Add reach its time.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	c.wake()
	return ch
}

// Waiting is the number of pending After calls.
func (c *fakeClock) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	c.wake()
}

func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.wake()
	return c.now
}

func (c *fakeClock) wake() {
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			keep = append(keep, w)
		} else {
			w.ch <- c.now
		}
	}
	c.waiters = keep
}

func newIndex(t testing.TB, rdb *redis.Client, clock *fakeClock, cfg IndexConfig) *Index {
	t.Helper()
	if clock != nil {
		cfg.Now = clock.Now
	}
	return NewIndex(rdb, cfg)
}

func msg(uid string, due time.Time) Message {
	return Message{UID: uid, Topic: "persistent://bill/pay/timeouts", Due: due, Payload: []byte("p-" + uid)}
}

func TestIndexScheduleGetRoundTrip(t *testing.T) {
	rdb := testredis.Start(t).Client()
	x := newIndex(t, rdb, nil, IndexConfig{})
	ctx := t.Context()
	in := Message{
		UID:        "u-1",
		Topic:      "persistent://bill/pay/orders",
		Key:        "order-42",
		Tags:       []string{"PAY_1001", "TIMEOUT"},
		Properties: map[string]string{"currency": "EUR", "retry": "3"},
		Payload:    []byte{0, 1, 2, 0xff, 'x'},
		EventTime:  time.UnixMilli(1_700_000_000_123),
		Due:        time.Unix(1_700_000_900, 1), // rounds up to the next second
		App:        "billing",
	}
	seq, err := x.Schedule(ctx, in)
	require.NoError(t, err)
	require.NotZero(t, seq)

	got, err := x.Get(ctx, "u-1")
	require.NoError(t, err)
	want := in
	want.Due = time.Unix(1_700_000_901, 0)
	require.Equal(t, seq, got.Seq)
	require.Equal(t, want.UID, got.UID)
	require.Equal(t, want.Topic, got.Topic)
	require.Equal(t, want.Key, got.Key)
	require.Equal(t, want.Tags, got.Tags)
	require.Equal(t, want.Properties, got.Properties)
	require.Equal(t, want.Payload, got.Payload)
	require.True(t, want.EventTime.Equal(got.EventTime))
	require.True(t, want.Due.Equal(got.Due), "due %s", got.Due)
	require.Equal(t, want.App, got.App)
	require.Zero(t, got.Claims)
	require.True(t, got.LeaseUntil.IsZero())

	// The same uid again: nothing written, same number.
	again := in
	again.Payload = []byte("other")
	seq2, err := x.Schedule(ctx, again)
	require.ErrorIs(t, err, ErrExists)
	require.Equal(t, seq, seq2)
	got, err = x.Get(ctx, "u-1")
	require.NoError(t, err)
	require.Equal(t, in.Payload, got.Payload)

	n, err := x.Len(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func TestIndexScheduleInvalid(t *testing.T) {
	x := newIndex(t, testredis.Start(t).Client(), nil, IndexConfig{})
	tests := []struct {
		name string
		m    Message
	}{
		{"no uid", Message{Topic: "t", Due: t0}},
		{"no topic", Message{UID: "u", Due: t0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := x.Schedule(t.Context(), tt.m)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func TestIndexPrefixesKeys(t *testing.T) {
	rdb := testredis.Start(t).Client()
	ctx := t.Context()
	a := newIndex(t, rdb, nil, IndexConfig{Prefix: "a:"})
	b := newIndex(t, rdb, nil, IndexConfig{Prefix: "b:"})
	_, err := a.Schedule(ctx, msg("u", t0))
	require.NoError(t, err)
	_, err = b.Get(ctx, "u")
	require.ErrorIs(t, err, ErrNotFound)
	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		require.Regexp(t, `^a:`, k)
	}
}

func TestIndexCancel(t *testing.T) {
	rdb := testredis.Start(t).Client()
	x := newIndex(t, rdb, nil, IndexConfig{})
	ctx := t.Context()
	m := msg("u-1", t0)
	m.Key = "k"
	_, err := x.Schedule(ctx, m)
	require.NoError(t, err)

	require.NoError(t, x.Cancel(ctx, "u-1"))
	require.ErrorIs(t, x.Cancel(ctx, "u-1"), ErrNotFound)
	_, err = x.Get(ctx, "u-1")
	require.ErrorIs(t, err, ErrNotFound)
	// Nothing is left behind but the number counter.
	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Equal(t, []string{"psc:delay:seq"}, keys)
	// The uid can be scheduled again.
	_, err = x.Schedule(ctx, m)
	require.NoError(t, err)
}

func TestIndexCancelKeyAndList(t *testing.T) {
	x := newIndex(t, testredis.Start(t).Client(), nil, IndexConfig{})
	ctx := t.Context()
	const topic = "persistent://bill/pay/orders"
	for i, k := range []string{"order-1", "order-2", "order-1", "order-1"} {
		m := msg(fmt.Sprintf("u-%d", i), t0.Add(time.Duration(10-i)*time.Second))
		m.Topic, m.Key = topic, k
		_, err := x.Schedule(ctx, m)
		require.NoError(t, err)
	}
	other := msg("u-other", t0)
	other.Topic, other.Key = "persistent://bill/pay/other", "order-1"
	_, err := x.Schedule(ctx, other)
	require.NoError(t, err)

	tests := []struct {
		name string
		q    Query
		want []string
		err  error
	}{
		{name: "by key, due order", q: Query{Topic: topic, Key: "order-1"}, want: []string{"u-3", "u-2", "u-0"}},
		{name: "by key, limited", q: Query{Topic: topic, Key: "order-1", Limit: 2}, want: []string{"u-3", "u-2"}},
		{name: "other topic, same key", q: Query{Topic: other.Topic, Key: "order-1"}, want: []string{"u-other"}},
		{name: "no such key", q: Query{Topic: topic, Key: "order-9"}},
		{name: "all, earliest first", q: Query{Limit: 3}, want: []string{"u-other", "u-3", "u-2"}},
		{name: "topic without key", q: Query{Topic: topic}, err: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := x.List(ctx, tt.q)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			var uids []string
			for _, s := range got {
				uids = append(uids, s.UID)
			}
			require.Equal(t, tt.want, uids)
		})
	}

	uids, err := x.CancelKey(ctx, topic, "order-1")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"u-0", "u-2", "u-3"}, uids)
	for _, uid := range []string{"u-0", "u-2", "u-3"} {
		_, err := x.Get(ctx, uid)
		require.ErrorIs(t, err, ErrNotFound, uid)
	}
	for _, uid := range []string{"u-1", "u-other"} {
		_, err := x.Get(ctx, uid)
		require.NoError(t, err, uid)
	}
	n, err := x.Len(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
}

func TestIndexClaimLeaseAck(t *testing.T) {
	clock := newFakeClock(t0)
	x := newIndex(t, testredis.Start(t).Client(), clock, IndexConfig{Lease: 30 * time.Second})
	ctx := t.Context()
	due := t0.Add(10 * time.Second)
	seq, err := x.Schedule(ctx, msg("u-1", due))
	require.NoError(t, err)
	dueSec := time.Unix(dueSeconds(due), 0)

	claim := func() Claim {
		t.Helper()
		cs, err := x.Claim(ctx, []uint64{seq})
		require.NoError(t, err)
		require.Len(t, cs, 1)
		require.Equal(t, seq, cs[0].Seq)
		return cs[0]
	}
	// Not due yet: not even one nanosecond early.
	clock.Set(dueSec.Add(-time.Nanosecond))
	c := claim()
	require.Equal(t, NotDue, c.Status)
	require.True(t, dueSec.Equal(c.Due))

	clock.Set(dueSec)
	c = claim()
	require.Equal(t, Claimed, c.Status)
	require.Equal(t, "u-1", c.Message.UID)
	require.Equal(t, 1, c.Message.Claims)
	require.True(t, dueSec.Add(30*time.Second).Equal(c.Message.LeaseUntil))

	// Held: nobody else gets it during the lease; Get shows the lease.
	clock.Add(29 * time.Second)
	require.Equal(t, NotDue, claim().Status)
	s, err := x.Get(ctx, "u-1")
	require.NoError(t, err)
	require.Equal(t, 1, s.Claims)
	require.True(t, c.Message.LeaseUntil.Equal(s.LeaseUntil))
	// And it cannot be rescheduled under the claim.
	require.ErrorIs(t, x.Reschedule(ctx, "u-1", t0.Add(time.Hour)), ErrInFlight)

	// The lease runs out without an ack: the message is due again.
	clock.Add(time.Second)
	c = claim()
	require.Equal(t, Claimed, c.Status)
	require.Equal(t, 2, c.Message.Claims)

	require.NoError(t, x.Ack(ctx, "u-1"))
	require.Equal(t, Gone, claim().Status)
	require.ErrorIs(t, x.Ack(ctx, "u-1"), ErrNotFound)
	n, err := x.Len(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestIndexCancelClaimedSaysInFlight(t *testing.T) {
	clock := newFakeClock(t0.Add(time.Second))
	x := newIndex(t, testredis.Start(t).Client(), clock, IndexConfig{})
	ctx := t.Context()
	seq, err := x.Schedule(ctx, msg("u-1", t0))
	require.NoError(t, err)
	cs, err := x.Claim(ctx, []uint64{seq})
	require.NoError(t, err)
	require.Equal(t, Claimed, cs[0].Status)
	require.ErrorIs(t, x.Cancel(ctx, "u-1"), ErrInFlight)
	_, err = x.Get(ctx, "u-1")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestIndexReschedule(t *testing.T) {
	clock := newFakeClock(t0)
	x := newIndex(t, testredis.Start(t).Client(), clock, IndexConfig{})
	ctx := t.Context()
	seq, err := x.Schedule(ctx, msg("u-1", t0.Add(time.Hour)))
	require.NoError(t, err)
	later := t0.Add(2 * time.Hour)
	require.NoError(t, x.Reschedule(ctx, "u-1", later))
	s, err := x.Get(ctx, "u-1")
	require.NoError(t, err)
	require.Equal(t, dueSeconds(later), s.Due.Unix())
	require.Equal(t, seq, s.Seq)

	var loaded []time.Time
	_, err = x.LoadRange(ctx, t0, t0.Add(3*time.Hour), func(_ uint64, due time.Time) { loaded = append(loaded, due) })
	require.NoError(t, err)
	require.Equal(t, []time.Time{time.Unix(dueSeconds(later), 0)}, loaded)

	// A wheel still holding the old time finds it not due.
	clock.Set(t0.Add(time.Hour + time.Second))
	cs, err := x.Claim(ctx, []uint64{seq})
	require.NoError(t, err)
	require.Equal(t, NotDue, cs[0].Status)
	require.Equal(t, dueSeconds(later), cs[0].Due.Unix())

	require.ErrorIs(t, x.Reschedule(ctx, "nope", later), ErrNotFound)
}

func TestIndexLoadRange(t *testing.T) {
	rdb := testredis.Start(t).Client()
	ctx := t.Context()
	x := newIndex(t, rdb, nil, IndexConfig{PageSize: 4})
	// 30 messages, due at t0+s for s in 0..14, two per second.
	var all []uint64
	for i := range 30 {
		seq, err := x.Schedule(ctx, msg(fmt.Sprintf("u-%02d", i), t0.Add(time.Duration(i/2)*time.Second)))
		require.NoError(t, err)
		all = append(all, seq)
	}
	tests := []struct {
		name     string
		from, to time.Duration
		want     []uint64
	}{
		{name: "all", from: -time.Hour, to: time.Hour, want: all},
		{name: "middle, bounds inclusive", from: 3 * time.Second, to: 5 * time.Second, want: all[6:12]},
		{name: "none", from: time.Hour, to: 2 * time.Hour},
	}
	base := time.Unix(dueSeconds(t0), 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			n, err := x.LoadRange(ctx, base.Add(tt.from), base.Add(tt.to), func(seq uint64, due time.Time) {
				got = append(got, seq)
			})
			require.NoError(t, err)
			require.Equal(t, len(tt.want), n)
			require.Equal(t, tt.want, got)
		})
	}

	for _, pageSize := range []int{1, 2, 3, 7, 100} {
		t.Run(fmt.Sprintf("entries move while loading, page size %d", pageSize), func(t *testing.T) {
			// The rank-page reader (used for the overdue backlog): after
			// every fourth entry seen, that entry moves to the end of the set
			// (as a claim does), so the ranks of all later entries shift.
			// Nothing may be skipped or repeated.
			x := newIndex(t, rdb, nil, IndexConfig{PageSize: pageSize, Prefix: fmt.Sprintf("moving%d:", pageSize)})
			var all []uint64
			for i := range 30 {
				seq, err := x.Schedule(ctx, msg(fmt.Sprintf("u-%02d", i), t0.Add(time.Duration(i/2)*time.Second)))
				require.NoError(t, err)
				all = append(all, seq)
			}
			fallbacks := cursorFallbacks.Load()
			var got []uint64
			l := loader{x: x, hi: float64(base.Add(time.Minute).Unix()), fn: func(seq uint64, due time.Time) {
				got = append(got, seq)
				if len(got)%4 == 0 {
					require.NoError(t, rdb.ZAdd(ctx, x.dueKey, redis.Z{Score: float64(base.Add(time.Hour).Unix()), Member: member(seq)}).Err())
				}
			}}
			require.NoError(t, x.loadScored(ctx, &l, "-inf"))
			require.Equal(t, all, got)
			if pageSize*pagesInFlight < 30 {
				require.Greater(t, cursorFallbacks.Load(), fallbacks, "the cursor path ran")
			}
		})
	}
}

func TestIndexLoadRangeBothPaths(t *testing.T) {
	// The last bySecondSpan seconds of a range are read second by second,
	// anything older by rank pages; the seam must neither drop nor repeat.
	ctx := t.Context()
	x := newIndex(t, testredis.Start(t).Client(), nil, IndexConfig{PageSize: 2})
	const span = bySecondSpan * time.Second
	end := base.Add(48 * time.Hour)
	cut := end.Add(-span + time.Second) // first second read by second
	offsets := []time.Duration{-40 * time.Hour, -span, -span, -time.Second, 0, 0, time.Second, span - 2*time.Second, span - time.Second, span}
	var want []uint64
	for i, off := range offsets {
		seq, err := x.Schedule(ctx, msg(fmt.Sprintf("u-%d", i), cut.Add(off)))
		require.NoError(t, err)
		if off < span {
			want = append(want, seq)
		}
	}
	tests := []struct {
		name     string
		from, to time.Time
		want     []uint64
	}{
		{name: "from the beginning", from: time.Unix(-1, 0), to: end, want: want},
		{name: "by second only", from: cut, to: end, want: want[4:]},
		{name: "rank pages then seconds", from: cut.Add(-span), to: end, want: want[1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			var dues []time.Time
			n, err := x.LoadRange(ctx, tt.from, tt.to, func(seq uint64, due time.Time) {
				got = append(got, seq)
				dues = append(dues, due)
			})
			require.NoError(t, err)
			require.Equal(t, len(tt.want), n)
			require.Equal(t, tt.want, got)
			require.True(t, slices.IsSortedFunc(dues, time.Time.Compare))
		})
	}
}

func TestIndexClaimExactlyOnceAcrossReplicas(t *testing.T) {
	srv := testredis.Start(t)
	ctx := t.Context()
	clock := newFakeClock(t0.Add(time.Minute))
	replicas := []*Index{
		newIndex(t, srv.Client(), clock, IndexConfig{}),
		newIndex(t, srv.Client(), clock, IndexConfig{}),
		newIndex(t, srv.Client(), clock, IndexConfig{}),
	}
	const n = 300
	seqs := make([]uint64, n)
	for i := range n {
		var err error
		seqs[i], err = replicas[i%3].Schedule(ctx, msg(fmt.Sprintf("u-%d", i), t0))
		require.NoError(t, err)
	}
	var mu sync.Mutex
	claimedBy := map[uint64]int{}
	var wg sync.WaitGroup
	for _, x := range replicas {
		wg.Go(func() {
			for i := 0; i < n; i += 10 { // batches of 10, all replicas at once
				cs, err := x.Claim(ctx, seqs[i:i+10])
				if !assertNoError(t, err) {
					return
				}
				mu.Lock()
				for _, c := range cs {
					if c.Status == Claimed {
						claimedBy[c.Seq]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, claimedBy, n)
	for seq, k := range claimedBy {
		require.Equal(t, 1, k, "seq %d claimed %d times", seq, k)
	}
}

// assertNoError reports err from a goroutine other than the test's.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

// A message under its own IndexID is found, cancelled by key and acked by
// that id, and each of those frees the id for a new message.
func TestIndexIndexID(t *testing.T) {
	rdb := testredis.Start(t).Client()
	x := newIndex(t, rdb, nil, IndexConfig{})
	ctx := t.Context()
	m := msg("u", time.Unix(2_000_000_000, 0))
	m.Key, m.IndexID = "order-1", "u/retry-1"
	_, err := x.Schedule(ctx, m)
	require.NoError(t, err)
	got, err := x.Get(ctx, "u/retry-1")
	require.NoError(t, err)
	require.Equal(t, "u", got.UID)
	require.Equal(t, "u/retry-1", got.IndexID)
	_, err = x.Get(ctx, "u")
	require.ErrorIs(t, err, ErrNotFound)

	uids, err := x.CancelKey(ctx, m.Topic, "order-1")
	require.NoError(t, err)
	require.Equal(t, []string{"u"}, uids)
	seq, err := x.Schedule(ctx, m)
	require.NoError(t, err, "the cancel freed the IndexID")
	require.NoError(t, x.ackSeq(ctx, "u/retry-1", seq))
	_, err = x.Schedule(ctx, m)
	require.NoError(t, err, "the ack freed it")
}
