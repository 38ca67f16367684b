package spool

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAppendAndReplayInOrder(t *testing.T) {
	tests := []struct {
		name         string
		segmentBytes int64
		n            int
		wantSegments int // at least
	}{
		{"one segment", 1 << 20, 50, 1},
		{"rollover every few records", 600, 50, 10},
		{"every record bigger than a segment", 32, 10, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions(t)
			opts.SegmentBytes = tt.segmentBytes
			s := openT(t, dir, opts)
			ps := appendN(t, s, 0, tt.n)
			for i := 1; i < len(ps); i++ {
				prev, cur := ps[i-1], ps[i]
				require.True(t, cur.Segment > prev.Segment || (cur.Segment == prev.Segment && cur.Offset > prev.Offset),
					"positions must grow: %s then %s", prev, cur)
			}

			st := s.Stats()
			require.Equal(t, uint64(tt.n), st.Records)
			require.Equal(t, tt.n, st.Depth)
			require.GreaterOrEqual(t, st.Segments, tt.wantSegments)
			require.Len(t, segmentFiles(t, dir), st.Segments)
			require.Equal(t, diskSize(t, dir), st.DiskBytes)
			require.Equal(t, testEpoch, st.Oldest)

			check := func(s *Spool) {
				gs := readUnacked(t, s)
				require.Len(t, gs, tt.n)
				for i, g := range gs {
					require.Equal(t, ps[i], g.pos)
					require.Equal(t, spooled(i), g.rec)
				}
			}
			check(s)
			require.NoError(t, s.Close())
			check(openT(t, dir, opts)) // and again after a restart
		})
	}
}

func TestSpooledAtIsKeptWhenSet(t *testing.T) {
	s := openT(t, t.TempDir(), testOptions(t))
	rec := testRecord(1)
	rec.SpooledAt = testEpoch.Add(-time.Hour)
	_, err := s.Append(context.Background(), rec)
	require.NoError(t, err)
	gs := readUnacked(t, s)
	require.Equal(t, rec, gs[0].rec)
	require.Equal(t, rec.SpooledAt, s.Stats().Oldest)
}

// syncGate blocks the first fsync after arm() until release is closed, so a
// test can queue appenders behind a running fsync deterministically.
type syncGate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newSyncGate() *syncGate {
	return &syncGate{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *syncGate) sync(f *os.File) error {
	if g.armed.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		<-g.release
	}
	return f.Sync()
}

// TestGroupCommitSharesFsync holds one fsync open while n-1 more appenders
// queue up, then counts the fsyncs it takes to commit them all.
func TestGroupCommitSharesFsync(t *testing.T) {
	const n = 33
	tests := []struct {
		name       string
		maxBatch   int
		wantFsyncs uint64
	}{
		{"group commit", 1024, 2},           // the held one, then all 32 queued together
		{"batches of 8", 8, 1 + 32/8},       // the held one, then 4 batches
		{"one fsync per record", 1, 1 + 32}, // group commit off
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := newSyncGate()
			opts := testOptions(t)
			opts.MaxBatchRecords = tt.maxBatch
			opts.sync = gate.sync
			s := openT(t, t.TempDir(), opts)
			appendN(t, s, 0, 1) // creates the segment
			before := s.Stats().Fsyncs

			gate.armed.Store(true)
			errs := make(chan error, n)
			appendOne := func(i int) {
				_, err := s.Append(context.Background(), testRecord(i))
				errs <- err
			}
			go appendOne(1)
			<-gate.entered // the writer is inside fsync for record 1
			for i := 2; i <= n; i++ {
				go appendOne(i)
			}
			require.Eventually(t, func() bool { return len(s.reqs) == n-1 }, 10*time.Second, time.Millisecond)
			close(gate.release)
			for range n {
				require.NoError(t, <-errs)
			}

			require.Equal(t, tt.wantFsyncs, s.Stats().Fsyncs-before)
			gs := readUnacked(t, s)
			require.Len(t, gs, n+1)
		})
	}
}

// TestGroupCommitUnderLoad runs many real appenders against real fsync: with
// group commit the fsyncs are a fraction of the records, without it they
// match one for one.
func TestGroupCommitUnderLoad(t *testing.T) {
	const appenders, each = 64, 16
	tests := []struct {
		name     string
		maxBatch int
		check    func(t *testing.T, records, fsyncs uint64)
	}{
		{"group commit", 0, func(t *testing.T, records, fsyncs uint64) {
			require.LessOrEqual(t, fsyncs*4, records, "expected fsyncs << records")
		}},
		{"one fsync per record", 1, func(t *testing.T, records, fsyncs uint64) {
			require.Equal(t, records+1, fsyncs) // +1: the segment header
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.maxBatch != 1 && onTmpfs(dir) {
				t.Skip("fsync is free on tmpfs, so nothing queues behind it; TestGroupCommitSharesFsync still proves batching")
			}
			opts := testOptions(t)
			opts.MaxBatchRecords = tt.maxBatch
			s := openT(t, dir, opts)
			var wg sync.WaitGroup
			var mu sync.Mutex
			seen := map[Pos]bool{}
			for g := range appenders {
				wg.Go(func() {
					for i := range each {
						p, err := s.Append(context.Background(), testRecord(g*each+i))
						if !assertNoError(t, err) {
							return
						}
						mu.Lock()
						seen[p] = true
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			st := s.Stats()
			t.Logf("%d records, %d fsyncs", st.Records, st.Fsyncs)
			require.Equal(t, uint64(appenders*each), st.Records)
			require.Len(t, seen, appenders*each, "positions must be distinct")
			tt.check(t, st.Records, st.Fsyncs)
			require.Len(t, readUnacked(t, s), appenders*each)
		})
	}
}

// assertNoError is require.NoError for goroutines other than the test's.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

func TestErrFullKeepsWhatIsSpooled(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t)
	opts.SegmentBytes = 1 << 10
	opts.MaxBytes = 4 << 10
	s := openT(t, dir, opts)

	var ps []Pos
	var err error
	i := 0
	for ; ; i++ {
		var p Pos
		p, err = s.Append(context.Background(), testRecord(i))
		if err != nil {
			break
		}
		ps = append(ps, p)
		require.Less(t, i, 1000, "never became full")
	}
	require.ErrorIs(t, err, ErrFull)
	require.NotEmpty(t, ps)
	_, err = s.Append(context.Background(), testRecord(i))
	require.ErrorIs(t, err, ErrFull, "still full")

	st := s.Stats()
	require.LessOrEqual(t, st.DiskBytes, opts.MaxBytes)
	require.Equal(t, diskSize(t, dir), st.DiskBytes)
	require.Equal(t, uint64(2), st.Full)
	require.Equal(t, len(ps), st.Depth)

	// Everything acknowledged before is intact, also after a restart.
	require.NoError(t, s.Close())
	s = openT(t, dir, opts)
	require.Empty(t, s.Recovery().Corrupt)
	gs := readUnacked(t, s)
	require.Equal(t, uidRange(0, len(ps)), uids(gs))

	// Acknowledging frees space: the same records fit again.
	for _, g := range gs {
		require.NoError(t, s.Ack(g.pos))
	}
	var again []Pos
	for i := range len(ps) {
		p, err := s.Append(context.Background(), testRecord(i))
		require.NoError(t, err, "append %d after acknowledging everything", i)
		again = append(again, p)
	}
	require.Greater(t, again[0].Segment, ps[len(ps)-1].Segment, "new records go to new segments")
	gs = readUnacked(t, s)
	require.Equal(t, uidRange(0, len(ps)), uids(gs))
	require.Equal(t, again[0], gs[0].pos)
}

// TestErrFullReclaimsAcknowledgedActiveSegment: when everything sits in the
// segment being appended to and all of it is acknowledged, that segment's
// space comes back too.
func TestErrFullReclaimsAcknowledgedActiveSegment(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t)
	opts.MaxBytes = 2 << 10
	s := openT(t, dir, opts)
	var ps []Pos
	for {
		p, err := s.Append(context.Background(), testRecord(0))
		if errors.Is(err, ErrFull) {
			break
		}
		require.NoError(t, err)
		ps = append(ps, p)
	}
	require.Equal(t, 1, s.Stats().Segments)
	for _, p := range ps[:len(ps)-1] {
		require.NoError(t, s.Ack(p))
	}
	_, err := s.Append(context.Background(), testRecord(0))
	require.ErrorIs(t, err, ErrFull, "one record is still unacknowledged")
	require.NoError(t, s.Ack(ps[len(ps)-1]))
	p, err := s.Append(context.Background(), testRecord(1))
	require.NoError(t, err)
	require.Greater(t, p.Segment, ps[0].Segment)
	require.Equal(t, []got{{p, spooled(1)}}, readUnacked(t, s))
	require.Len(t, segmentFiles(t, dir), 1)
}

func TestAppendRejects(t *testing.T) {
	s := openT(t, t.TempDir(), func() Options { o := testOptions(t); o.MaxRecordBytes = 1 << 10; return o }())
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		rec  Record
		want error
	}{
		{"too large", context.Background(), Record{UID: "x", Payload: make([]byte, 2<<10)}, ErrTooLarge},
		{"event time out of range", context.Background(), Record{UID: "x", EventTime: time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC)}, ErrInvalid},
		{"cancelled context", cancelled, testRecord(1), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Append(tt.ctx, tt.rec)
			require.ErrorIs(t, err, tt.want)
		})
	}
	require.Zero(t, s.Stats().Records, "nothing may be written")
	require.Zero(t, s.Stats().Depth)
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, testOptions(t))
	ps := appendN(t, s, 0, 3)

	r := s.NewReader()
	defer r.Close()
	for range 3 {
		_, _, err := r.Next(context.Background())
		require.NoError(t, err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, _, err := r.Next(context.Background()) // caught up: waits
		blocked <- err
	}()

	require.NoError(t, s.Close())
	require.ErrorIs(t, <-blocked, ErrClosed)
	require.NoError(t, s.Close())

	_, err := s.Append(context.Background(), testRecord(9))
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.Ack(ps[0]), ErrClosed)
	_, _, err = s.NewReader().Next(context.Background())
	require.ErrorIs(t, err, ErrClosed)

	s = openT(t, dir, testOptions(t))
	require.Equal(t, uidRange(0, 3), uids(readUnacked(t, s)))
}

// TestCloseCommitsQueuedAppends: appends racing with Close either succeed
// (and are then durable) or fail with ErrClosed; none is lost or hangs.
func TestCloseCommitsQueuedAppends(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, testOptions(t))
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok []string
	for i := range n {
		wg.Go(func() {
			_, err := s.Append(context.Background(), testRecord(i))
			switch {
			case err == nil:
				mu.Lock()
				ok = append(ok, testRecord(i).UID)
				mu.Unlock()
			case !errors.Is(err, ErrClosed):
				t.Errorf("append %d: %v", i, err)
			}
		})
	}
	require.NoError(t, s.Close())
	wg.Wait()

	s = openT(t, dir, testOptions(t))
	require.ElementsMatch(t, ok, uids(readUnacked(t, s)))
}

func TestOpenLocksDirectory(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, testOptions(t))
	_, err := Open(dir, testOptions(t))
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, s.Close())
	openT(t, dir, testOptions(t))
}

func TestReaderWaitsForAppends(t *testing.T) {
	s := openT(t, t.TempDir(), testOptions(t))
	type result struct {
		rec Record
		err error
	}
	res := make(chan result, 2)
	for range 2 { // two independent readers see the same record
		go func() {
			r := s.NewReader()
			defer r.Close()
			_, rec, err := r.Next(context.Background())
			res <- result{rec, err}
		}()
	}
	appendN(t, s, 7, 1)
	for range 2 {
		r := <-res
		require.NoError(t, r.err)
		require.Equal(t, spooled(7), r.rec)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	r := s.NewReader()
	defer r.Close()
	_, _, err := r.Next(ctx)
	require.NoError(t, err) // record 7 is still unacknowledged
	_, _, err = r.Next(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestReaderReportsDamagedRecord(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, testOptions(t))
	ps := appendN(t, s, 0, 3)
	// Damage record 1 behind the spool's back, after it was verified.
	f, err := os.OpenFile(segmentFiles(t, dir)[0], os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0xff}, ps[1].Offset+frameHeaderSize+3)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	r := s.NewReader()
	defer r.Close()
	ctx := context.Background()
	_, rec, err := r.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, spooled(0), rec)
	p, _, err := r.Next(ctx)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Equal(t, ps[1], p)
	_, rec, err = r.Next(ctx)
	require.NoError(t, err, "the reader moves past a damaged record")
	require.Equal(t, spooled(2), rec)
}

func TestStatsOldestFollowsAcks(t *testing.T) {
	now := testEpoch
	opts := testOptions(t)
	opts.Now = func() time.Time { return now }
	s := openT(t, t.TempDir(), opts)
	require.True(t, s.Stats().Oldest.IsZero())
	var ps []Pos
	for i := range 3 {
		now = testEpoch.Add(time.Duration(i) * time.Minute)
		ps = append(ps, appendN(t, s, i, 1)...)
	}
	require.Equal(t, testEpoch, s.Stats().Oldest)
	require.NoError(t, s.Ack(ps[1]))
	require.Equal(t, testEpoch, s.Stats().Oldest, "out-of-order ack leaves the oldest")
	require.NoError(t, s.Ack(ps[0]))
	require.Equal(t, testEpoch.Add(2*time.Minute), s.Stats().Oldest)
	require.NoError(t, s.Ack(ps[2]))
	st := s.Stats()
	require.True(t, st.Oldest.IsZero())
	require.Zero(t, st.Depth)
	require.Equal(t, uint64(3), st.Acked)
}

func TestAckErrors(t *testing.T) {
	opts := testOptions(t)
	opts.SegmentBytes = 256
	s := openT(t, t.TempDir(), opts)
	ps := appendN(t, s, 0, 6)
	require.Greater(t, ps[5].Segment, ps[0].Segment)

	require.ErrorIs(t, s.Ack(Pos{Segment: ps[0].Segment, Offset: ps[0].Offset + 1}), ErrUnknownPos)
	require.ErrorIs(t, s.Ack(Pos{Segment: ps[5].Segment + 100}), ErrUnknownPos)
	require.ErrorIs(t, s.Ack(Pos{}), ErrUnknownPos)
	require.NoError(t, s.Ack(ps[0]))
	require.NoError(t, s.Ack(ps[0]), "acknowledging twice is fine")
	require.Equal(t, uint64(1), s.Stats().Acked)
	require.Equal(t, 5, s.Stats().Depth)
	if ps[1].Segment != ps[0].Segment { // segment of record 0 is now gone
		require.NoError(t, s.Ack(ps[0]), "acknowledging in a removed segment is fine")
	}
	require.True(t, strings.HasPrefix(ps[0].String(), "1:"))
}
