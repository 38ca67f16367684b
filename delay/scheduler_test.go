package delay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/stretchr/testify/require"
)

// base is a whole second, so "due at base+3s" fires at exactly that step.
var base = time.Unix(1_700_000_000, 0)

// recorder is a ForwardFunc that notes when (by the fake clock) each
// message was forwarded, and can fail chosen messages.
type recorder struct {
	clock *fakeClock
	mu    sync.Mutex
	fired map[string][]time.Time
	last  map[string]Scheduled
	fail  map[string]int // uid -> failures left
	ch    chan string    // optional: receives each forwarded uid
}

func newRecorder(clock *fakeClock) *recorder {
	return &recorder{clock: clock, fired: map[string][]time.Time{}, last: map[string]Scheduled{}, fail: map[string]int{}}
}

func (r *recorder) forward(_ context.Context, m Scheduled) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail[m.UID] > 0 {
		r.fail[m.UID]--
		return errors.New("broker down")
	}
	r.fired[m.UID] = append(r.fired[m.UID], r.clock.Now())
	r.last[m.UID] = m
	if r.ch != nil {
		r.ch <- m.UID
	}
	return nil
}

func (r *recorder) firedAt(uid string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.fired[uid]...)
}

var quiet = slog.New(slog.DiscardHandler)

func newScheduler(t *testing.T, srv *testredis.Server, clock *fakeClock, fwd ForwardFunc, cfg SchedulerConfig) *Scheduler {
	t.Helper()
	x := NewIndex(srv.Client(), IndexConfig{Now: clock.Now, Lease: 5 * time.Second})
	cfg.Clock, cfg.Logger = clock, quiet
	s, err := NewScheduler(x, fwd, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stepTo steps every scheduler at each second up to and including end.
func stepTo(t *testing.T, clock *fakeClock, end time.Time, ss ...*Scheduler) {
	t.Helper()
	for now := clock.Now().Add(time.Second); !now.After(end); now = now.Add(time.Second) {
		clock.Set(now)
		var wg sync.WaitGroup
		for _, s := range ss {
			wg.Go(func() { assertNoError(t, s.Step(t.Context(), now)) })
		}
		wg.Wait()
	}
}

func TestSchedulerFiresAtDueNeverEarly(t *testing.T) {
	srv := testredis.Start(t)
	clock := newFakeClock(base)
	rec := newRecorder(clock)
	s := newScheduler(t, srv, clock, rec.forward, SchedulerConfig{Horizon: time.Minute})
	ctx := t.Context()
	require.NoError(t, s.Load(ctx))

	tests := []struct {
		uid  string
		due  time.Duration
		want time.Duration // step that must forward it
	}{
		{"now", 0, time.Second},
		{"in-3s", 3 * time.Second, 3 * time.Second},
		{"in-1.5s", 1500 * time.Millisecond, 2 * time.Second},
		{"in-10s", 10 * time.Second, 10 * time.Second},
		{"beyond-horizon", 3 * time.Minute, 3 * time.Minute}, // loaded as the horizon moves
	}
	for _, tt := range tests {
		m := msg(tt.uid, base.Add(tt.due))
		m.Tags = []string{"T"}
		_, err := s.Schedule(ctx, m)
		require.NoError(t, err)
	}
	stepTo(t, clock, base.Add(4*time.Minute), s)
	for _, tt := range tests {
		require.Equal(t, []time.Time{base.Add(tt.want)}, rec.firedAt(tt.uid), tt.uid)
		require.Equal(t, []string{"T"}, rec.last[tt.uid].Tags)
		require.Equal(t, []byte("p-"+tt.uid), rec.last[tt.uid].Payload)
	}
	n, err := s.index.Len(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "acked messages leave the index")
	require.Zero(t, s.Wheel().Len())
}

func TestSchedulerRestartReloadsFromRedis(t *testing.T) {
	srv := testredis.Start(t)
	clock := newFakeClock(base)
	ctx := t.Context()

	first := newRecorder(clock)
	a := newScheduler(t, srv, clock, first.forward, SchedulerConfig{Horizon: time.Minute})
	require.NoError(t, a.Load(ctx))
	dues := map[string]time.Duration{"a": 2 * time.Second, "b": 5 * time.Second, "c": 30 * time.Second, "d": 10 * time.Minute}
	for uid, d := range dues {
		_, err := a.Schedule(ctx, msg(uid, base.Add(d)))
		require.NoError(t, err)
	}
	stepTo(t, clock, base.Add(3*time.Second), a)
	require.Len(t, first.firedAt("a"), 1)
	require.NoError(t, a.Close())
	// The process dies here: the wheel is gone, Redis is not. Time passes.
	clock.Set(base.Add(7 * time.Second))

	second := newRecorder(clock)
	b := newScheduler(t, srv, clock, second.forward, SchedulerConfig{Horizon: time.Minute})
	require.NoError(t, b.Load(ctx))
	require.Equal(t, 2, b.Wheel().Len(), "b (overdue) and c are within the horizon; d is not")
	stepTo(t, clock, base.Add(11*time.Minute), b)

	require.Empty(t, second.firedAt("a"), "fired before the restart, not again")
	require.Equal(t, []time.Time{base.Add(8 * time.Second)}, second.firedAt("b"), "overdue: on the first step")
	require.Equal(t, []time.Time{base.Add(30 * time.Second)}, second.firedAt("c"))
	require.Equal(t, []time.Time{base.Add(10 * time.Minute)}, second.firedAt("d"))
}

func TestSchedulerReplicasForwardEachMessageOnce(t *testing.T) {
	srv := testredis.Start(t)
	clock := newFakeClock(base)
	ctx := t.Context()
	rec := newRecorder(clock) // shared: counts forwards across both replicas
	cfg := SchedulerConfig{Horizon: time.Minute, Sweep: 3 * time.Second, Batch: 16}
	a := newScheduler(t, srv, clock, rec.forward, cfg)
	b := newScheduler(t, srv, clock, rec.forward, cfg)

	r := rand.New(rand.NewPCG(1, 2))
	dues := map[string]time.Time{}
	// Half scheduled before both load: both wheels hold them and race.
	for i := range 200 {
		uid := fmt.Sprintf("early-%d", i)
		dues[uid] = base.Add(time.Duration(r.Int64N(int64(20 * time.Second))))
		_, err := a.index.Schedule(ctx, msg(uid, dues[uid]))
		require.NoError(t, err)
	}
	require.NoError(t, a.Load(ctx))
	require.NoError(t, b.Load(ctx))
	// Half through one replica or the other: only that wheel has them.
	for i := range 200 {
		uid := fmt.Sprintf("late-%d", i)
		dues[uid] = base.Add(time.Duration(r.Int64N(int64(20 * time.Second))))
		_, err := []*Scheduler{a, b}[i%2].Schedule(ctx, msg(uid, dues[uid]))
		require.NoError(t, err)
	}
	stepTo(t, clock, base.Add(30*time.Second), a, b)

	for uid, due := range dues {
		at := rec.firedAt(uid)
		require.Len(t, at, 1, "%s forwarded %d times", uid, len(at))
		require.False(t, at[0].Before(due), "%s early", uid)
		require.Less(t, at[0].Sub(due), time.Second, "%s late", uid)
	}
}

func TestSchedulerForwardFailureComesBackAfterLease(t *testing.T) {
	srv := testredis.Start(t)
	clock := newFakeClock(base)
	rec := newRecorder(clock)
	rec.fail["x"] = 1
	s := newScheduler(t, srv, clock, rec.forward, SchedulerConfig{}) // lease 5 s (newScheduler)
	ctx := t.Context()
	require.NoError(t, s.Load(ctx))
	_, err := s.Schedule(ctx, msg("x", base.Add(2*time.Second)))
	require.NoError(t, err)

	stepTo(t, clock, base.Add(6*time.Second), s)
	require.Empty(t, rec.firedAt("x"), "failed at 2s; the lease holds it until 7s")
	got, err := s.index.Get(ctx, "x")
	require.NoError(t, err)
	require.Equal(t, 1, got.Claims)

	stepTo(t, clock, base.Add(10*time.Second), s)
	require.Equal(t, []time.Time{base.Add(7 * time.Second)}, rec.firedAt("x"))
	require.Equal(t, 2, rec.last["x"].Claims)
	_, err = s.index.Get(ctx, "x")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestSchedulerSweepFindsOtherReplicasMessages(t *testing.T) {
	srv := testredis.Start(t)
	clock := newFakeClock(base)
	rec := newRecorder(clock)
	s := newScheduler(t, srv, clock, rec.forward, SchedulerConfig{Horizon: time.Hour, Sweep: 4 * time.Second})
	ctx := t.Context()
	require.NoError(t, s.Load(ctx))
	// Scheduled by "another replica" after this one loaded its horizon.
	_, err := s.index.Schedule(ctx, msg("remote", base.Add(5*time.Second)))
	require.NoError(t, err)
	require.Zero(t, s.Wheel().Len())

	stepTo(t, clock, base.Add(20*time.Second), s)
	at := rec.firedAt("remote")
	require.Len(t, at, 1)
	require.False(t, at[0].Before(base.Add(5*time.Second)))
	require.LessOrEqual(t, at[0].Sub(base.Add(5*time.Second)), 4*time.Second, "within one sweep interval")
}

func TestSchedulerCancelAndReschedule(t *testing.T) {
	srv := testredis.Start(t)
	clock := newFakeClock(base)
	rec := newRecorder(clock)
	s := newScheduler(t, srv, clock, rec.forward, SchedulerConfig{Horizon: time.Minute, Sweep: -1})
	ctx := t.Context()
	require.NoError(t, s.Load(ctx))
	for _, uid := range []string{"cancelled", "earlier", "later"} {
		_, err := s.Schedule(ctx, msg(uid, base.Add(10*time.Second)))
		require.NoError(t, err)
	}
	require.NoError(t, s.Cancel(ctx, "cancelled"))
	require.ErrorIs(t, s.Cancel(ctx, "cancelled"), ErrNotFound)
	require.NoError(t, s.Reschedule(ctx, "earlier", base.Add(3*time.Second)))
	require.NoError(t, s.Reschedule(ctx, "later", base.Add(5*time.Minute)))
	require.Equal(t, 1, s.Wheel().Len(), "only 'earlier' is due within the horizon")

	stepTo(t, clock, base.Add(6*time.Minute), s)
	require.Empty(t, rec.firedAt("cancelled"))
	require.Equal(t, []time.Time{base.Add(3 * time.Second)}, rec.firedAt("earlier"))
	require.Equal(t, []time.Time{base.Add(5 * time.Minute)}, rec.firedAt("later"))
}

func TestSchedulerRunner(t *testing.T) {
	srv := testredis.Start(t)
	clock := newFakeClock(base)
	rec := newRecorder(clock)
	rec.ch = make(chan string, 1)
	s := newScheduler(t, srv, clock, rec.forward, SchedulerConfig{})
	ctx := t.Context()
	require.NoError(t, s.Start(ctx))
	_, err := s.Schedule(ctx, msg("m", base.Add(2*time.Second)))
	require.NoError(t, err)

	for range 2 {
		// Move time only once the runner waits for the next tick.
		require.Eventually(t, func() bool { return clock.Waiting() == 1 }, 5*time.Second, time.Millisecond)
		select {
		case uid := <-rec.ch:
			t.Fatalf("%s forwarded before its time", uid)
		default:
		}
		clock.Add(time.Second)
	}
	select {
	case uid := <-rec.ch:
		require.Equal(t, "m", uid)
	case <-time.After(5 * time.Second): // a safety net, not a timing assertion
		t.Fatal("not forwarded at its due time")
	}
	require.Equal(t, []time.Time{base.Add(2 * time.Second)}, rec.firedAt("m"))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
}

// A retry plan's next step is scheduled for a uid whose previous copy the
// scheduler has forwarded but not yet removed from the index: the consumer
// got the copy and nacked it again before the ack after the forward. Under
// its own IndexID the next step is stored and forwarded; under the bare uid
// it would be taken for a repeat and lost.
func TestSchedulerNextStepWhileForwardIsUnacked(t *testing.T) {
	srv := testredis.Start(t)
	clock := newFakeClock(base)
	var s *Scheduler
	var mu sync.Mutex
	var fired []string // IndexID@second
	nested := make(chan error, 2)
	fwd := func(ctx context.Context, m Scheduled) error {
		mu.Lock()
		fired = append(fired, fmt.Sprintf("%s@%d", m.IndexID, clock.Now().Sub(base)/time.Second))
		first := len(fired) == 1
		mu.Unlock()
		if first {
			bare := msg("u", base.Add(5*time.Second))
			_, err := s.Schedule(ctx, bare)
			nested <- err
			next := msg("u", base.Add(5*time.Second))
			next.IndexID = "u/retry-2"
			_, err = s.Schedule(ctx, next)
			nested <- err
		}
		return nil
	}
	s = newScheduler(t, srv, clock, fwd, SchedulerConfig{})
	ctx := t.Context()
	require.NoError(t, s.Load(ctx))
	first := msg("u", base.Add(2*time.Second))
	first.IndexID = "u/retry-1"
	_, err := s.Schedule(ctx, first)
	require.NoError(t, err)
	_, err = s.Schedule(ctx, first)
	require.ErrorIs(t, err, ErrExists, "one step scheduled twice is stored once")

	stepTo(t, clock, base.Add(10*time.Second), s)
	require.NoError(t, <-nested, "the bare uid is free: step 1 lives under its IndexID")
	require.NoError(t, <-nested, "step 2 is stored while step 1 waits for its ack")
	mu.Lock()
	slices.Sort(fired) // the two due at 5 s are forwarded concurrently
	require.Equal(t, []string{"@5", "u/retry-1@2", "u/retry-2@5"}, fired)
	mu.Unlock()
	n, err := s.index.Len(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "every copy's ack removed it from the index")
}

// Without IndexIDs the same sequence loses the next step: the old
// behaviour, kept here so the reason for IndexID stays visible.
func TestSchedulerBareUIDWhileForwardIsUnacked(t *testing.T) {
	srv := testredis.Start(t)
	clock := newFakeClock(base)
	var s *Scheduler
	nested := make(chan error, 1)
	var once sync.Once
	fwd := func(ctx context.Context, m Scheduled) error {
		once.Do(func() {
			_, err := s.Schedule(ctx, msg("u", base.Add(5*time.Second)))
			nested <- err
		})
		return nil
	}
	s = newScheduler(t, srv, clock, fwd, SchedulerConfig{})
	require.NoError(t, s.Load(t.Context()))
	_, err := s.Schedule(t.Context(), msg("u", base.Add(2*time.Second)))
	require.NoError(t, err)
	stepTo(t, clock, base.Add(3*time.Second), s)
	require.ErrorIs(t, <-nested, ErrExists)
}
