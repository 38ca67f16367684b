package tracer

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGovernor(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	g := newGovernor(0.1, 1<<20, time.Minute, 0.5, t0)
	require.Zero(t, g.hold(t0), "nothing known yet: go ahead")

	// 500 events cost 50 ms of CPU: 100 µs each. 10k events/s arriving
	// would need 1 CPU: busy.
	g.charge(at(0), 50*time.Millisecond, 500)
	g.sample(at(100*time.Millisecond), 1000, 0, 0, -1)
	g.sample(at(200*time.Millisecond), 2000, 0, 0, -1)
	require.True(t, g.busy)
	require.Zero(t, g.hold(at(200*time.Millisecond)), "the burst allowance (0.2 CPU-s) still covers it")
	// 0.2 - 0.05 + 0.02 (refilled in 200 ms) - 0.3 = 0.13 CPU-s, but debt
	// stops at one second of budget (0.1 CPU-s).
	g.charge(at(200*time.Millisecond), 300*time.Millisecond, 3000)
	d := g.hold(at(200 * time.Millisecond))
	require.InDelta(t, 1.0, d.Seconds(), 0.01, "0.1 CPU-s of debt at 0.1 CPU-s/s")
	require.NotZero(t, g.hold(at(1100*time.Millisecond)))
	require.Zero(t, g.hold(at(1200*time.Millisecond)), "paid back")
	require.Zero(t, g.hold(at(1700*time.Millisecond)))

	// Quiet: 10 events/s would need 1 ms of CPU per second.
	g.charge(at(1700*time.Millisecond), time.Second, 10000)
	require.NotZero(t, g.hold(at(1700*time.Millisecond)))
	for i := range 10 {
		g.sample(at(2*time.Second+time.Duration(i)*100*time.Millisecond), 2000+uint64(i), 0, 0, -1)
	}
	require.False(t, g.busy)
	require.Zero(t, g.hold(at(3*time.Second)), "quiet: drain at full speed")
	g.charge(at(3*time.Second), 5*time.Second, 500_000)
	require.Zero(t, g.tokens, "a quiet drain runs up no debt for the next busy spell")

	// Busy again, but past a deferral limit: full speed too.
	for i := range 5 {
		g.sample(at(3*time.Second+time.Duration(i)*100*time.Millisecond), 3000+uint64(i)*1000, 0, 0, -1)
	}
	require.True(t, g.busy)
	g.charge(at(3500*time.Millisecond), 300*time.Millisecond, 3000)
	require.NotZero(t, g.hold(at(3500*time.Millisecond)))
	g.sample(at(3600*time.Millisecond), 8000, 2<<20, 0, -1)
	limited, hits := g.atLimit()
	require.True(t, limited)
	require.EqualValues(t, 1, hits)
	require.Zero(t, g.hold(at(3600*time.Millisecond)), "outbox past DeferMaxBytes")
	g.sample(at(3700*time.Millisecond), 9000, 0, 2*time.Minute, -1)
	require.Zero(t, g.hold(at(3700*time.Millisecond)), "lag past DeferMaxAge")
	g.sample(at(3800*time.Millisecond), 10000, 0, 0, -1)
	require.NotZero(t, g.hold(at(3800*time.Millisecond)), "back under the limits")

	off := newGovernor(-1, 0, 0, 0.5, t0)
	off.charge(t0, time.Hour, 1)
	require.Zero(t, off.hold(t0), "a negative budget never defers")
	offLimits := newGovernor(-1, 1<<20, time.Minute, 0.5, t0)
	offLimits.sample(at(time.Second), 1000, 2<<20, 2*time.Minute, -1)
	limited, hits = offLimits.atLimit()
	require.False(t, limited, "no deferral, so no deferral limit reached")
	require.Zero(t, hits)
}

// cpuSink stores events and charges a fixed, simulated CPU cost per event
// to a clock the pipeline reads instead of the thread's CPU time.
type cpuSink struct {
	perEvent time.Duration
	cpu      atomic.Int64  // simulated ns
	latency  time.Duration // each Write takes this long (fake time), for tests that need writes to take time
	mu       sync.Mutex
	stored   map[string]bool
	reject   string // uid of an event refused for good (400), or ""
}

func (s *cpuSink) Write(_ context.Context, evs []Event) error {
	time.Sleep(s.latency)
	s.cpu.Add(int64(s.perEvent) * int64(len(evs)))
	s.mu.Lock()
	defer s.mu.Unlock()
	var be BatchError
	for i, ev := range evs {
		if s.reject != "" && ev.UID == s.reject {
			be.Items = append(be.Items, ItemError{Index: i, Status: 400, Reason: "mapping conflict"})
			continue
		}
		s.stored[ev.UID] = true // every test event has its own uid
	}
	if len(be.Items) > 0 {
		return &be
	}
	return nil
}

func (s *cpuSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stored)
}

func (s *cpuSink) measure(f func()) time.Duration {
	before := s.cpu.Load()
	f()
	return time.Duration(s.cpu.Load() - before)
}

func deferralPipeline(t *testing.T, sink *cpuSink, opts Options) *Pipeline {
	t.Helper()
	opts.Sink, opts.Dir, opts.Logger = sink, t.TempDir(), slog.New(slog.DiscardHandler)
	opts.QueueSize, opts.OverflowSize = 1<<16, 1<<16
	opts.BatchSize = 100
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	opts.ReplayMinBackoff, opts.ReplayMaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	if opts.BusyCPUShare == 0 {
		// The sink's CPU is simulated and the test process is idle, so the
		// rate alone decides (TestGovernorBusyNeedsCPU covers the CPU test).
		opts.BusyCPUShare = -1
	}
	p, err := NewPipeline(opts)
	require.NoError(t, err)
	p.measure = sink.measure
	p.Start()
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// busyFor records rate events per second for d, in steps of 10 ms.
func busyFor(p *Pipeline, rate int, d time.Duration, next *int) {
	for range int(d / (10 * time.Millisecond)) {
		for range rate / 100 {
			p.Record(Event{Type: Accepted, UID: "u-" + strconv.Itoa(*next), Time: time.Now()})
			*next++
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPipelineDefersWhileBusyAndCatchesUp: a store that needs 100 µs of
// CPU per event, 10k events/s arriving (a whole CPU's worth). While the
// load lasts the store gets about its budget (10% of a CPU) and the rest
// waits in the outbox, with the lag visible; once the load stops, the outbox
// drains at full speed and every event is stored.
func TestPipelineDefersWhileBusyAndCatchesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &cpuSink{perEvent: 100 * time.Microsecond, stored: map[string]bool{}}
		p := deferralPipeline(t, sink, Options{IngestBudget: 0.1})
		n := 0
		start := time.Now()
		busyFor(p, 10_000, 10*time.Second, &n)
		elapsed := time.Since(start)
		st := p.Stats()
		require.Greater(t, st.Deferred, uint64(0), "%+v", st)
		require.True(t, st.Throttled, "%+v", st)
		require.False(t, st.DeferLimit)
		require.Zero(t, st.DeferLimitHits)
		require.Greater(t, st.Lag, time.Second, "the oldest waiting event is seconds old")
		// The store got its budget, the burst allowance, and at most one
		// batch (10 ms) over: not the 10 s of CPU the load would need.
		budget := 0.1*elapsed.Seconds() + 0.1*governorBurst + 0.01
		require.LessOrEqual(t, st.IngestCPU.Seconds(), budget+0.05, "%+v", st)
		require.Less(t, sink.count(), n/2)

		// Quiet: the outbox drains without waiting for the budget.
		time.Sleep(2 * time.Second)
		synctest.Wait()
		st = p.Stats()
		require.Equal(t, n, sink.count(), "%+v", st)
		require.Equal(t, uint64(n), st.Written+st.Replayed)
		require.Zero(t, st.Lag)
		require.Zero(t, st.OutboxBytes)
		require.Zero(t, st.Dropped())
		require.NoError(t, p.Close(context.Background()))
	})
}

// TestPipelineDeferralLimit: under sustained load, once the outbox passes
// DeferMaxBytes the store is written at full speed (taking CPU from the data
// plane) rather than the outbox growing to its hard limit and losing
// events; nothing is dropped and the lag stays bounded.
func TestPipelineDeferralLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &cpuSink{perEvent: 100 * time.Microsecond, stored: map[string]bool{}}
		p := deferralPipeline(t, sink, Options{IngestBudget: 0.1, DeferMaxBytes: 256 << 10, MaxOutboxBytes: 64 << 20})
		n := 0
		start := time.Now()
		busyFor(p, 10_000, 10*time.Second, &n)
		elapsed := time.Since(start)
		st := p.Stats()
		require.Positive(t, st.DeferLimitHits, "%+v", st)
		require.Greater(t, st.Deferred, uint64(0))
		require.Greater(t, st.IngestCPU.Seconds(), 0.5*elapsed.Seconds(), "past the limit the store runs at full speed: %+v", st)
		require.Less(t, st.OutboxBytes, int64(1<<20), "%+v", st)
		require.Zero(t, st.SpillFailed)

		time.Sleep(2 * time.Second)
		synctest.Wait()
		require.Equal(t, n, sink.count())
		require.NoError(t, p.Close(context.Background()))
	})
}

// TestPipelineCloseDrainsDeferred: Close writes what the budget parked,
// so a shutdown right after a burst leaves nothing waiting.
func TestPipelineCloseDrainsDeferred(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &cpuSink{perEvent: 100 * time.Microsecond, stored: map[string]bool{}}
		p := deferralPipeline(t, sink, Options{IngestBudget: 0.1})
		n := 0
		busyFor(p, 10_000, 3*time.Second, &n)
		require.Positive(t, p.Stats().Deferred)
		require.Less(t, sink.count(), n)
		require.NoError(t, p.Close(context.Background()))
		st := p.Stats()
		require.Equal(t, n, sink.count(), "%+v", st)
		require.Zero(t, st.OutboxBytes)
	})
}

// TestPipelineCloseDrainsPastARejectedEvent: an event the store refuses
// for good, among the deferred ones, is counted as rejected and does not
// stop Close from draining the rest.
func TestPipelineCloseDrainsPastARejectedEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &cpuSink{perEvent: 100 * time.Microsecond, latency: time.Millisecond, stored: map[string]bool{}}
		p := deferralPipeline(t, sink, Options{IngestBudget: 0.1, SegmentBytes: 64 << 10}) // many segments
		n := 0
		busyFor(p, 10_000, 3*time.Second, &n)
		// Reject the oldest event still deferred: the drain meets it first,
		// with segments of the outbox still after it.
		sink.mu.Lock()
		first := 0
		for sink.stored["u-"+strconv.Itoa(first)] {
			first++
		}
		require.Less(t, first, n/2, "most of the burst is deferred")
		sink.reject = "u-" + strconv.Itoa(first)
		sink.mu.Unlock()
		require.NoError(t, p.Close(context.Background()))
		st := p.Stats()
		require.Equal(t, n-1, sink.count(), "%+v", st)
		require.EqualValues(t, 1, st.Rejected)
		require.Zero(t, st.OutboxBytes)
	})
}

// TestPipelineHoldsABurstFromItsFirstBatch: a burst after a quiet spell is
// held back from its first batch on, not only from the writer's next
// flush tick: the load is sampled at every batch (at most every 50 ms), so
// with a long flush interval a burst shorter than it is not written at full
// speed. The first batch goes straight to the store (the bucket holds the
// burst allowance), the rest wait in the outbox.
func TestPipelineHoldsABurstFromItsFirstBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &cpuSink{perEvent: 100 * time.Microsecond, stored: map[string]bool{}}
		p := deferralPipeline(t, sink, Options{IngestBudget: 0.001, FlushInterval: time.Second})
		p.Record(Event{Type: Accepted, UID: "first", Time: time.Now()}) // the store's cost becomes known
		time.Sleep(1600 * time.Millisecond)                             // 600 ms after a tick
		synctest.Wait()
		require.Equal(t, 1, sink.count())
		n := 0
		busyFor(p, 10_000, 300*time.Millisecond, &n) // 30 batches, all before the next tick
		st := p.Stats()
		require.EqualValues(t, n+1, st.Recorded)
		require.GreaterOrEqual(t, st.Deferred, uint64(n-100), "at most the first batch is written: %+v", st)

		time.Sleep(3 * time.Second) // quiet again: the outbox drains
		synctest.Wait()
		require.Equal(t, n+1, sink.count(), "%+v", p.Stats())
		require.NoError(t, p.Close(context.Background()))
	})
}

// TestPipelineNoDeferralUnderLightLoad: 200 events/s at 100 µs each need
// 2% of a CPU, within the budget: written directly, nothing parked.
func TestPipelineNoDeferralUnderLightLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &cpuSink{perEvent: 100 * time.Microsecond, stored: map[string]bool{}}
		p := deferralPipeline(t, sink, Options{IngestBudget: 0.1})
		n := 0
		busyFor(p, 200, 5*time.Second, &n)
		time.Sleep(time.Second)
		synctest.Wait()
		st := p.Stats()
		require.Zero(t, st.Deferred, "%+v", st)
		require.Zero(t, st.Spilled)
		require.Equal(t, n, sink.count())
		require.NoError(t, p.Close(context.Background()))
	})
}

// The budget applies only while the CPUs are in use: with the same stream
// of events, a process with CPUs to spare writes at full speed, and the
// sink's own CPU never counts towards the process being busy.
func TestGovernorBusyNeedsCPU(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	procs := float64(runtime.GOMAXPROCS(0))
	// A process CPU clock that used share of every CPU in each 100 ms step.
	var proc time.Duration
	step := func(share float64) time.Duration {
		proc += time.Duration(share * procs * float64(100*time.Millisecond))
		return proc
	}
	// 100 µs an event and 2000 x GOMAXPROCS events/s: the sink would need
	// a fifth of the CPUs to keep up, far more than half the budget.
	perStep := uint64(200 * procs)
	const cost = 100 * time.Microsecond

	g := newGovernor(0.02, 1<<30, time.Hour, 0.7, t0)
	g.charge(at(0), 500*cost, 500)
	n := uint64(0)
	for i := range 10 {
		n += perStep
		g.sample(at(time.Duration(i+1)*100*time.Millisecond), n, 0, 0, step(0.1))
	}
	require.False(t, g.busy, "10% of the CPUs in use plus 20% for the sink: CPUs to spare")
	g.charge(at(time.Second), 2*time.Second, 20000)
	require.Zero(t, g.hold(at(time.Second)), "not busy: full speed")

	// The sink itself takes 80% of the CPUs: still not busy.
	for i := range 10 {
		n += perStep
		g.charge(at(time.Second+time.Duration(i)*100*time.Millisecond), time.Duration(0.8*procs*float64(100*time.Millisecond)), int(0.8*procs*1000))
		g.sample(at(time.Second+time.Duration(i+1)*100*time.Millisecond), n, 0, 0, step(0.9))
	}
	require.False(t, g.busy, "the sink's own CPU does not make the process busy")

	// The data plane takes 60%, the sink would need 20% more: busy, and
	// the budget holds the sink back.
	for i := range 10 {
		n += perStep
		g.sample(at(2*time.Second+time.Duration(i+1)*100*time.Millisecond), n, 0, 0, step(0.6))
	}
	require.True(t, g.busy)
	g.charge(at(3*time.Second), time.Second, 10000)
	require.NotZero(t, g.hold(at(3*time.Second)))

	// Unknown process CPU (off Linux): the rate alone decides, as before.
	u := newGovernor(0.02, 1<<30, time.Hour, 0.7, t0)
	u.charge(at(0), 500*cost, 500)
	u.sample(at(100*time.Millisecond), perStep, 0, 0, -1)
	u.sample(at(200*time.Millisecond), 2*perStep, 0, 0, -1)
	require.True(t, u.busy)
	// A negative busy share: any CPU use counts.
	a := newGovernor(0.02, 1<<30, time.Hour, -1, t0)
	a.charge(at(0), 500*cost, 500)
	a.sample(at(100*time.Millisecond), perStep, 0, 0, 0)
	a.sample(at(200*time.Millisecond), 2*perStep, 0, 0, 0)
	require.True(t, a.busy)
}
