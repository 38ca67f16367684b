package tracer

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func openTestSQLite(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "trace.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// A Write is stored in transactions of at most sqliteInsertRows rows, and
// the sink yields after each one: 100 events are four chunks (32, 32, 32,
// 4), every event is stored, and an invalid event is reported without
// stopping the others.
func TestSQLiteWriteYieldsBetweenChunks(t *testing.T) {
	ctx := context.Background()
	s := openTestSQLite(t)

	events := make([]Event, 101)
	for i := range 100 {
		events[i] = benchEvent(i)
	}
	events[100] = benchEvent(100)
	events[100].UID = "" // invalid: no uid
	var took []time.Duration
	err := s.Write(withYield(ctx, func(d time.Duration) { took = append(took, d) }), events)
	var be *BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Items, 1)
	require.Equal(t, 100, be.Items[0].Index)
	require.Len(t, took, 4, "chunks of 32, 32, 32 and 4 rows")
	for _, d := range took {
		require.Positive(t, d)
	}
	n, err := s.Count(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 100, n)

	// Writing the same batch again (a retry after a partial failure) stores
	// nothing twice.
	require.ErrorAs(t, s.Write(ctx, events), &be)
	n, err = s.Count(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 100, n)
}

// A cancelled context fails the chunk it reaches and leaves no transaction
// open: the chunks before it are stored and the next Write works.
func TestSQLiteWriteStopsBetweenChunks(t *testing.T) {
	ctx := context.Background()
	s := openTestSQLite(t)

	events := make([]Event, 96)
	for i := range events {
		events[i] = benchEvent(i)
	}
	wctx, cancel := context.WithCancel(ctx)
	chunks := 0
	err := s.Write(withYield(wctx, func(time.Duration) {
		if chunks++; chunks == 2 {
			cancel()
		}
	}), events)
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
	n, err := s.Count(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 64, n, "the two chunks before the cancellation")

	require.NoError(t, s.Write(ctx, events))
	n, err = s.Count(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 96, n)
}

// The pipeline's yield sleeps longer the more of the CPUs the data plane
// uses (twice as long as the piece took at half of them, eight times at
// 80%), at most maxSinkYield, and not at all when the process is idle or
// Close is draining.
func TestPipelineYield(t *testing.T) {
	// Not started: a running writer would sample the governor and
	// overwrite the share the test sets.
	p, err := NewPipeline(Options{Sink: &cpuSink{stored: map[string]bool{}}, Dir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	var slept []time.Duration
	p.sleep = func(d time.Duration) { slept = append(slept, d) }
	setShare := func(share float64, known bool) {
		p.gov.mu.Lock()
		defer p.gov.mu.Unlock()
		p.gov.share, p.gov.lastProc = share, -1
		if known {
			p.gov.lastProc = time.Second
		}
	}

	setShare(0.5, true)
	p.yield(time.Millisecond)
	p.yield(time.Second)
	p.yield(0)
	require.Equal(t, []time.Duration{2 * time.Millisecond, maxSinkYield}, slept)

	slept = nil
	setShare(0.2, true)
	p.yield(time.Millisecond)
	setShare(0.8, true)
	p.yield(time.Millisecond)
	setShare(1, true)
	p.yield(time.Millisecond)
	require.Len(t, slept, 3)
	require.Equal(t, 2*time.Millisecond, slept[0], "at least twice as long")
	require.InDelta(t, float64(8*time.Millisecond), float64(slept[1]), float64(time.Microsecond))
	require.Equal(t, maxSinkYield, slept[2], "a saturated data plane: the longest pause")

	slept = nil
	setShare(0.01, true)
	p.yield(time.Millisecond)
	require.Empty(t, slept, "an idle process: full speed")

	setShare(0, false)
	p.yield(time.Millisecond)
	require.Equal(t, []time.Duration{2 * time.Millisecond}, slept, "CPU time unknown: yield")

	slept = nil
	p.draining.Store(true)
	p.yield(time.Millisecond)
	require.Empty(t, slept, "Close drains at full speed")
	p.draining.Store(false)
}
