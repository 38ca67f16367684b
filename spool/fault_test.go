package spool

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestInjectedWriteFaults covers failures a tmpfs does not produce on
// demand: a short write followed by ENOSPC (tmpfs on this kernel fails the
// whole write instead), and a failed fsync.
func TestInjectedWriteFaults(t *testing.T) {
	tests := []struct {
		name       string
		cause      error
		failWrite  bool // else fail the fsync
		newSegment bool // the spool must stop using the segment
	}{
		{name: "short write then ENOSPC", cause: syscall.ENOSPC, failWrite: true},
		{name: "fsync fails", cause: syscall.EIO, newSegment: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var armed atomic.Bool
			opts := testOptions(t)
			opts.writeAt = func(f *os.File, p []byte, off int64) (int, error) {
				if tt.failWrite && armed.CompareAndSwap(true, false) {
					n, err := f.WriteAt(p[:len(p)/2], off) // half of it reaches the file
					if err != nil {
						return n, err
					}
					return n, tt.cause
				}
				return f.WriteAt(p, off)
			}
			opts.sync = func(f *os.File) error {
				if !tt.failWrite && armed.CompareAndSwap(true, false) {
					return tt.cause
				}
				return f.Sync()
			}
			s := openT(t, dir, opts)
			ps := appendN(t, s, 0, 5)

			armed.Store(true)
			_, err := s.Append(context.Background(), testRecord(5))
			require.ErrorIs(t, err, ErrWrite)
			require.ErrorIs(t, err, tt.cause)
			require.False(t, armed.Load(), "the fault fired")
			require.Equal(t, diskSize(t, dir), s.Stats().DiskBytes, "cut back to the last good record")

			more := appendN(t, s, 6, 5)
			if tt.newSegment {
				require.Greater(t, more[0].Segment, ps[4].Segment)
			} else {
				require.Equal(t, ps[4].Segment, more[0].Segment)
			}
			st := s.Stats()
			require.Equal(t, uint64(1), st.WriteErrors)
			require.Equal(t, 10, st.Depth)
			want := append(uidRange(0, 5), uidRange(6, 11)...)
			require.Equal(t, want, uids(readUnacked(t, s)))
			require.NoError(t, s.Close())

			s = openT(t, dir, opts)
			require.Empty(t, s.Recovery().Corrupt)
			require.Equal(t, want, uids(readUnacked(t, s)))
		})
	}
}

// TestSegmentCreationFailure: when a new segment cannot be started, the
// appends that needed it fail and the next ones try again.
func TestSegmentCreationFailure(t *testing.T) {
	dir := t.TempDir()
	var failSyncs atomic.Int32
	opts := testOptions(t)
	opts.SegmentBytes = 300
	opts.sync = func(f *os.File) error {
		if failSyncs.Add(-1) >= 0 {
			return syscall.EIO
		}
		return f.Sync()
	}
	s := openT(t, dir, opts)
	failSyncs.Store(1)
	_, err := s.Append(context.Background(), testRecord(0))
	require.ErrorIs(t, err, ErrWrite)
	require.True(t, errors.Is(err, syscall.EIO))
	require.Empty(t, segmentFiles(t, dir), "the half-made segment is removed")
	ps := appendN(t, s, 1, 4)
	require.Equal(t, uidRange(1, 5), uids(readUnacked(t, s)))
	require.Greater(t, ps[0].Segment, uint64(1), "the failed id is not reused")
}
