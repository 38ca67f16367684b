package spool

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		// Re-executed by TestCrashKeepsEveryAcknowledgedRecord.
		os.Exit(runCrashChild(dir))
	}
	goleak.VerifyTestMain(m)
}

var discardLogger = slog.New(slog.DiscardHandler)

// testEpoch is what testOptions' clock says.
var testEpoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testOptions(t testing.TB) Options {
	return Options{
		CheckpointInterval: -1, // tests persist acknowledgements explicitly
		Now:                func() time.Time { return testEpoch },
		Logger:             slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// openT opens a spool and closes it when the test ends (Close is idempotent,
// so tests may close earlier).
func openT(t testing.TB, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testRecord(i int) Record {
	return Record{
		UID:        fmt.Sprintf("uid-%04d", i),
		App:        "billing",
		Topic:      fmt.Sprintf("persistent://pay/settle/topic-%d", i%3),
		Key:        fmt.Sprintf("order-%d", i%7),
		Tags:       []string{"PAY_1001", fmt.Sprintf("T%d", i%5)},
		Properties: map[string]string{"attempt": "1", "n": fmt.Sprint(i)},
		EventTime:  testEpoch.Add(-time.Duration(i) * time.Millisecond),
		Payload:    []byte(strings.Repeat(fmt.Sprintf("payload %d;", i), 1+i%4)),
	}
}

// spooled is testRecord(i) as Append stores it with testOptions' clock.
func spooled(i int) Record {
	r := testRecord(i)
	r.SpooledAt = testEpoch
	return r
}

type got struct {
	pos Pos
	rec Record
}

// appendN appends testRecord(from) .. testRecord(from+n-1) one by one.
func appendN(t testing.TB, s *Spool, from, n int) []Pos {
	t.Helper()
	var ps []Pos
	for i := from; i < from+n; i++ {
		p, err := s.Append(context.Background(), testRecord(i))
		require.NoError(t, err)
		ps = append(ps, p)
	}
	return ps
}

// readUnacked reads exactly the records the spool reports as unacknowledged
// and checks that the reader has nothing more.
func readUnacked(t testing.TB, s *Spool) []got {
	t.Helper()
	r := s.NewReader()
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []got
	for range s.Stats().Depth {
		p, rec, err := r.Next(ctx)
		require.NoError(t, err)
		out = append(out, got{p, rec})
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	_, rec, err := r.Next(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "reader returned more than Depth records: %+v", rec)
	return out
}

func uids(gs []got) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.rec.UID)
	}
	return out
}

func uidRange(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, testRecord(i).UID)
	}
	return out
}

// segmentFiles lists the segment files in dir.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	ms, err := filepath.Glob(filepath.Join(dir, segmentPrefix+"*"+segmentSuffix))
	require.NoError(t, err)
	slices.Sort(ms)
	return ms
}

// diskSize sums the sizes of the segment files in dir.
func diskSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	for _, p := range segmentFiles(t, dir) {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		n += fi.Size()
	}
	return n
}
