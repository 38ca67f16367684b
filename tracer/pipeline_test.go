package tracer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// memSink is a Sink whose failures the test scripts.
type memSink struct {
	mu     sync.Mutex
	stored map[string]tracer.Event
	order  []string // uids in the order they were first stored
	calls  int
	down   error                                   // returned for every write while set
	block  chan struct{}                           // while set, Write waits for it to close (or ctx)
	item   func(ev tracer.Event) *tracer.ItemError // per-event failure, or nil
}

func newMemSink() *memSink { return &memSink{stored: map[string]tracer.Event{}} }

func (s *memSink) Write(ctx context.Context, events []tracer.Event) error {
	s.mu.Lock()
	s.calls++
	block, down, item := s.block, s.down, s.item
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if down != nil {
		return down
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var failed []tracer.ItemError
	for i, ev := range events {
		if ev.ID == "" {
			return fmt.Errorf("event %d has no id", i)
		}
		if item != nil {
			if ie := item(ev); ie != nil {
				ie.Index = i
				failed = append(failed, *ie)
				continue
			}
		}
		if _, ok := s.stored[ev.ID]; !ok {
			s.stored[ev.ID] = ev
			s.order = append(s.order, ev.UID)
		}
	}
	if failed != nil {
		return &tracer.BatchError{Items: failed}
	}
	return nil
}

func (s *memSink) set(f func(s *memSink)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *memSink) uids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

func (s *memSink) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *memSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stored)
}

func newPipeline(t *testing.T, sink tracer.Sink, dir string, opts tracer.Options) *tracer.Pipeline {
	t.Helper()
	opts.Sink = sink
	opts.Dir = dir
	if opts.BatchSize == 0 {
		opts.BatchSize = 10
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.ReplayMinBackoff == 0 {
		opts.ReplayMinBackoff = time.Second
		opts.ReplayMaxBackoff = 4 * time.Second
	}
	p, err := tracer.NewPipeline(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) }) // after a failed assertion
	return p
}

func ev(i int) tracer.Event {
	return tracer.Event{Type: tracer.Accepted, UID: fmt.Sprintf("u-%04d", i), Topic: "t", Tags: []string{"A"},
		Time: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)}
}

func uidsOf(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("u-%04d", i))
	}
	return out
}

// segments lists the outbox's segment files.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	return m
}

// requireBalanced checks the Stats invariant once the outbox is empty.
func requireBalanced(t *testing.T, st tracer.Stats) {
	t.Helper()
	require.Zero(t, st.OutboxBytes, "outbox not empty: %+v", st)
	require.Equal(t, st.Recorded, st.Written+st.Replayed+st.Rejected+st.SpillFailed, "stats do not add up: %+v", st)
}

func TestPipelineWritesBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := newMemSink()
		p := newPipeline(t, sink, t.TempDir(), tracer.Options{})
		p.Start()
		for i := range 25 {
			p.Record(ev(i))
		}
		time.Sleep(150 * time.Millisecond) // the last, partial batch waits for FlushInterval
		synctest.Wait()
		require.Equal(t, uidsOf(0, 25), sink.uids())
		require.Equal(t, 3, sink.callCount()) // 10 + 10 + 5
		st := p.Stats()
		require.EqualValues(t, 25, st.Written)
		require.Zero(t, st.Spilled)
		requireBalanced(t, st)
		require.NoError(t, p.Close(t.Context()))
	})
}

func TestPipelineSpillsWhileSinkDownThenReplaysInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		sink := newMemSink()
		sink.down = errors.New("sink unreachable")
		p := newPipeline(t, sink, dir, tracer.Options{})
		p.Start()
		for i := range 30 {
			p.Record(ev(i))
		}
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		st := p.Stats()
		require.EqualValues(t, 30, st.Spilled)
		require.Zero(t, st.Written)
		require.Positive(t, st.OutboxBytes)
		require.Positive(t, st.SinkFailures)
		require.Zero(t, sink.count())

		// Still down after a few backoffs: nothing lands, nothing is lost.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		require.Zero(t, sink.count())
		callsWhileDown := sink.callCount()
		time.Sleep(4 * time.Second)
		synctest.Wait()
		require.LessOrEqual(t, sink.callCount()-callsWhileDown, 2, "replay must back off while the sink is down")

		// Events recorded while the outbox holds older ones queue behind them.
		for i := 30; i < 40; i++ {
			p.Record(ev(i))
		}
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		sink.set(func(s *memSink) { s.down = nil })
		time.Sleep(5 * time.Second) // the longest backoff
		synctest.Wait()
		require.Equal(t, uidsOf(0, 40), sink.uids(), "replay keeps the recorded order")
		st = p.Stats()
		require.EqualValues(t, 40, st.Replayed)
		requireBalanced(t, st)
		require.Empty(t, segments(t, dir), "replayed segments are deleted")

		// Healthy again: the direct path is used.
		p.Record(ev(40))
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		require.EqualValues(t, 1, p.Stats().Written)
		require.NoError(t, p.Close(t.Context()))
	})
}

func TestPipelineOverflowAndDropsAreCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := newMemSink()
		p := newPipeline(t, sink, t.TempDir(), tracer.Options{QueueSize: 4, OverflowSize: 3})
		// Not started: nothing drains, so the buffers fill deterministically.
		for i := range 20 {
			p.Record(ev(i))
		}
		st := p.Stats()
		require.EqualValues(t, 7, st.Recorded)
		require.EqualValues(t, 3, st.Overflowed)
		require.EqualValues(t, 13, st.DroppedFull)
		require.Equal(t, 4, st.QueueLen)
		require.Equal(t, 3, st.OverflowLen)

		p.Start()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		require.ElementsMatch(t, uidsOf(0, 7), sink.uids())
		st = p.Stats()
		require.EqualValues(t, 3, st.Spilled, "overflow goes through the outbox")
		requireBalanced(t, st)
		require.NoError(t, p.Close(t.Context()))
	})
}

func TestPipelineSlowSinkOverflowsToOutbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := newMemSink()
		release := make(chan struct{})
		sink.block = release
		p := newPipeline(t, sink, t.TempDir(), tracer.Options{QueueSize: 8, OverflowSize: 8, BatchSize: 4})
		p.Start()
		n := 0
		for range 50 { // the writer is stuck in Write; the overflow spiller keeps up
			p.Record(ev(n))
			n++
			synctest.Wait()
		}
		st := p.Stats()
		require.Zero(t, st.Dropped())
		require.Positive(t, st.Overflowed)
		require.Positive(t, st.Spilled)
		sink.set(func(s *memSink) { s.block = nil })
		close(release)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		require.ElementsMatch(t, uidsOf(0, 50), sink.uids())
		requireBalanced(t, p.Stats())
		require.NoError(t, p.Close(t.Context()))
	})
}

func TestPipelineItemFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := newMemSink()
		flaky := map[string]int{}
		sink.item = func(ev tracer.Event) *tracer.ItemError {
			switch {
			case strings.HasSuffix(ev.UID, "3"):
				return &tracer.ItemError{Status: 400, Reason: "mapper_parsing_exception"}
			case strings.HasSuffix(ev.UID, "5") && flaky[ev.UID] < 2:
				flaky[ev.UID]++
				return &tracer.ItemError{Status: 429, Reason: "too many requests", Retriable: true}
			}
			return nil
		}
		p := newPipeline(t, sink, t.TempDir(), tracer.Options{})
		p.Start()
		for i := range 30 {
			p.Record(ev(i))
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		var want []string
		for _, u := range uidsOf(0, 30) {
			if !strings.HasSuffix(u, "3") {
				want = append(want, u)
			}
		}
		require.ElementsMatch(t, want, sink.uids())
		st := p.Stats()
		require.EqualValues(t, 3, st.Rejected, "400s are counted, not retried")
		require.GreaterOrEqual(t, st.Spilled, uint64(3), "429s go to the outbox")
		requireBalanced(t, st)
		require.NoError(t, p.Close(t.Context()))
	})
}

func TestPipelinePermanentBatchError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := newMemSink()
		sink.down = fmt.Errorf("%w: malformed bulk body", tracer.ErrPermanent)
		p := newPipeline(t, sink, t.TempDir(), tracer.Options{})
		p.Start()
		for i := range 5 {
			p.Record(ev(i))
		}
		time.Sleep(time.Second)
		synctest.Wait()
		st := p.Stats()
		require.EqualValues(t, 5, st.Rejected)
		require.Zero(t, st.Spilled)
		requireBalanced(t, st)
		require.NoError(t, p.Close(t.Context()))
	})
}

func TestPipelineCloseFlushesPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := newMemSink()
		p := newPipeline(t, sink, t.TempDir(), tracer.Options{BatchSize: 100, FlushInterval: time.Hour})
		p.Start()
		for i := range 7 {
			p.Record(ev(i))
		}
		synctest.Wait()
		require.Zero(t, sink.count(), "the batch is not full and the interval has not passed")
		require.NoError(t, p.Close(t.Context()))
		require.Equal(t, uidsOf(0, 7), sink.uids())
		requireBalanced(t, p.Stats())

		p.Record(ev(99))
		require.EqualValues(t, 1, p.Stats().DroppedClosed)
		require.NoError(t, p.Close(t.Context()), "Close is idempotent")
	})
}

func TestPipelineCloseBeforeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := newMemSink()
		p := newPipeline(t, sink, t.TempDir(), tracer.Options{})
		p.Record(ev(0))
		require.NoError(t, p.Close(t.Context()))
		require.Equal(t, uidsOf(0, 1), sink.uids())
	})
}

func TestPipelineCloseSpillsAndNextPipelineReplays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		sink := newMemSink()
		release := make(chan struct{})
		sink.block = release // a sink that hangs
		p := newPipeline(t, sink, dir, tracer.Options{WriteTimeout: time.Minute})
		p.Start()
		for i := range 15 {
			p.Record(ev(i))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		err := p.Close(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded, "Close gave up on the hanging sink")
		st := p.Stats()
		require.EqualValues(t, 15, st.Spilled)
		require.Zero(t, sink.count())
		require.NotEmpty(t, segments(t, dir))

		sink2 := newMemSink()
		p2 := newPipeline(t, sink2, dir, tracer.Options{})
		p2.Start()
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, uidsOf(0, 15), sink2.uids())
		require.EqualValues(t, 15, p2.Stats().Replayed)
		require.Empty(t, segments(t, dir))
		require.NoError(t, p2.Close(t.Context()))
		close(release)
	})
}

func TestPipelineCorruptSegmentIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		down := newMemSink()
		down.down = errors.New("down")
		p := newPipeline(t, down, dir, tracer.Options{BatchSize: 5})
		p.Start()
		for i := range 15 { // three records of five
			p.Record(ev(i))
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		require.NoError(t, p.Close(t.Context()))
		segs := segments(t, dir)
		require.NotEmpty(t, segs)
		last := segs[len(segs)-1]
		b, err := os.ReadFile(last)
		require.NoError(t, err)
		b[len(b)-3] ^= 0xff // inside the last record: the third batch of five
		require.NoError(t, os.WriteFile(last, b, 0o600))

		sink := newMemSink()
		p2 := newPipeline(t, sink, dir, tracer.Options{})
		p2.Start()
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, uidsOf(0, 10), sink.uids(), "records before the damage are replayed")
		st := p2.Stats()
		require.EqualValues(t, 1, st.Corrupt)
		require.Empty(t, segments(t, dir))
		_, err = os.Stat(last + ".corrupt")
		require.NoError(t, err, "the damaged segment is kept for inspection")
		require.NoError(t, p2.Close(t.Context()))
	})
}

func TestPipelineOutboxFullIsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := newMemSink()
		sink.down = errors.New("down")
		p := newPipeline(t, sink, t.TempDir(), tracer.Options{BatchSize: 5, MaxOutboxBytes: 600})
		p.Start()
		for i := range 50 {
			p.Record(ev(i))
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		st := p.Stats()
		require.Positive(t, st.Spilled)
		require.Positive(t, st.SpillFailed)
		require.LessOrEqual(t, st.OutboxBytes, int64(600))
		require.Equal(t, st.Recorded, st.Spilled+st.SpillFailed)
		require.NoError(t, p.Close(t.Context()))
	})
}

func TestPipelineMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		sink := newMemSink()
		p := newPipeline(t, sink, t.TempDir(), tracer.Options{Registerer: reg, QueueSize: 2, OverflowSize: 1})
		for i := range 5 {
			p.Record(ev(i))
		}
		got := gather(t, reg)
		require.Equal(t, 3.0, got["psc_trace_events_recorded_total"])
		require.Equal(t, 1.0, got["psc_trace_events_overflowed_total"])
		require.Equal(t, 2.0, got[`psc_trace_events_dropped_total{reason="queue_full"}`])
		require.Equal(t, 0.0, got[`psc_trace_events_dropped_total{reason="closed"}`])
		require.Equal(t, 2.0, got["psc_trace_queue_length"])
		require.Equal(t, 1.0, got["psc_trace_overflow_length"])
		for _, name := range []string{
			`psc_trace_events_stored_total{path="direct"}`, `psc_trace_events_stored_total{path="outbox"}`,
			"psc_trace_events_spilled_total", "psc_trace_events_rejected_total",
			"psc_trace_events_spill_failed_total", "psc_trace_outbox_corrupt_records_total",
			"psc_trace_sink_failures_total", "psc_trace_outbox_bytes", "psc_trace_outbox_segments",
			"psc_trace_events_deferred_total", "psc_trace_ingest_cpu_seconds_total", "psc_trace_lag_seconds",
			"psc_trace_ingest_throttled", "psc_trace_defer_limit_reached", "psc_trace_defer_limit_reached_total",
		} {
			require.Contains(t, got, name)
		}

		// A second pipeline on the same registry is refused, not half-registered.
		_, err := tracer.NewPipeline(tracer.Options{Sink: sink, Dir: t.TempDir(), Registerer: reg})
		require.Error(t, err)
		require.Len(t, gather(t, reg), len(got))

		p.Start()
		time.Sleep(time.Second)
		synctest.Wait()
		got = gather(t, reg)
		require.Equal(t, 2.0, got[`psc_trace_events_stored_total{path="direct"}`])
		require.Equal(t, 1.0, got[`psc_trace_events_stored_total{path="outbox"}`])

		require.NoError(t, p.Close(t.Context()))
		require.Empty(t, gather(t, reg), "Close unregisters")
	})
}

// gather returns every sample as name{labels} -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if lp := m.GetLabel(); len(lp) > 0 {
				var parts []string
				for _, l := range lp {
					parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				name += "{" + strings.Join(parts, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestPipelineOutboxDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	p := newPipeline(t, newMemSink(), dir, tracer.Options{})
	_, err := tracer.NewPipeline(tracer.Options{Sink: newMemSink(), Dir: dir})
	require.ErrorContains(t, err, "in use")
	require.NoError(t, p.Close(t.Context()))
	p2 := newPipeline(t, newMemSink(), dir, tracer.Options{}) // released by Close
	require.NoError(t, p2.Close(t.Context()))
}

// TestPipelineConcurrentRecordIntoSQLite records from many goroutines into
// the real SQLite store and checks that every event is either stored or
// counted as dropped, across a restart that replays what Close left.
func TestPipelineConcurrentRecordIntoSQLite(t *testing.T) {
	store := openSQLite(t)
	defer func() { require.NoError(t, store.Close()) }()
	dir := t.TempDir()
	p := newPipeline(t, store, dir, tracer.Options{QueueSize: 1024, OverflowSize: 1024, BatchSize: 500,
		FlushInterval: 20 * time.Millisecond, ReplayMinBackoff: 10 * time.Millisecond, ReplayMaxBackoff: 50 * time.Millisecond})
	p.Start()
	const workers, per = 8, 2500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				e := ev(w*per + i)
				e.Topic = "t-conc"
				p.Record(e)
			}
		})
	}
	wg.Wait()
	require.NoError(t, p.Close(t.Context()))
	st := p.Stats()
	require.EqualValues(t, workers*per, st.Recorded+st.Dropped())
	require.Zero(t, st.Rejected+st.SpillFailed+st.Corrupt)
	t.Logf("stats after close: %+v", st)

	// What is still in the outbox is replayed by the next pipeline.
	p2 := newPipeline(t, store, dir, tracer.Options{ReplayMinBackoff: 10 * time.Millisecond})
	p2.Start()
	require.Eventually(t, func() bool { return p2.Stats().OutboxBytes == 0 }, time.Minute, 10*time.Millisecond) // minutes under -race: modernc SQLite is slow there
	require.NoError(t, p2.Close(t.Context()))
	// A segment the first pipeline had partly replayed is sent again whole
	// (its progress is kept in memory only); the store keeps one copy.
	require.GreaterOrEqual(t, st.Replayed+p2.Stats().Replayed, st.Spilled)
	require.EqualValues(t, st.Recorded, countTopic(t, store, "t-conc"))
}

func countTopic(t *testing.T, s tracer.Store, topic string) int {
	t.Helper()
	n := 0
	page := tracer.Page{Limit: tracer.MaxPageSize}
	for {
		res, err := s.ByTopic(t.Context(), topic, tracer.TimeRange{}, page)
		require.NoError(t, err)
		n += len(res.Events)
		if res.Next == "" {
			return n
		}
		page.Cursor = res.Next
	}
}

// Many goroutines recording while the writer drains the queue: every
// event recorded reaches the sink exactly once (Written and Replayed count
// sink deliveries, the sink counts distinct ids), and every event refused
// is counted as dropped. The small queue sends some through the overflow
// path and some past it.
func TestPipelineConcurrentRecordEachEventOnce(t *testing.T) {
	sink := newMemSink()
	p := newPipeline(t, sink, t.TempDir(), tracer.Options{QueueSize: 512, OverflowSize: 256, BatchSize: 50,
		FlushInterval: 5 * time.Millisecond, ReplayMinBackoff: 5 * time.Millisecond, ReplayMaxBackoff: 20 * time.Millisecond})
	p.Start()
	const workers, per = 8, 3000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				p.Record(ev(w*per + i))
				if i%100 == 99 {
					time.Sleep(200 * time.Microsecond) // let the writer take turns, so most events go through the queue
				}
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		st := p.Stats()
		return st.QueueLen == 0 && st.OverflowLen == 0 && st.OutboxBytes == 0 &&
			st.Written+st.Replayed+st.Rejected+st.SpillFailed == st.Recorded
	}, time.Minute, 5*time.Millisecond)
	st := p.Stats()
	t.Logf("%+v", st)
	require.EqualValues(t, workers*per, st.Recorded+st.Dropped())
	require.Zero(t, st.Rejected+st.SpillFailed+st.Corrupt+st.DroppedClosed)
	require.Positive(t, st.Recorded)
	require.EqualValues(t, st.Recorded, st.Written+st.Replayed, "each recorded event delivered once")
	require.EqualValues(t, st.Recorded, sink.count(), "distinct events in the sink")
	require.NoError(t, p.Close(t.Context()))
}
