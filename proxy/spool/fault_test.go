package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// mountTmpfs mounts a tmpfs of the given size on a fresh directory, or skips
// the test where mounting is not allowed (needs root or CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v); TestInjectedWriteFaults covers ENOSPC by injection", err)
	}
	t.Cleanup(func() { require.NoError(t, syscall.Unmount(dir, 0)) })
	return dir
}

// TestDiskFull fills a real 1 MiB tmpfs until writes fail with ENOSPC, then
// frees space: failed appends are reported as ErrWrite, the segment is cut
// back to its last good record, later appends work, and every acknowledged
// record is there after a restart.
func TestDiskFull(t *testing.T) {
	tests := []struct {
		name         string
		segmentBytes int64
		atHeader     bool
	}{
		{"while appending to a segment", 4 << 20, false}, // one segment larger than the disk
		{"while starting a segment", 128 << 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := mountTmpfs(t, "1m")
			filler := filepath.Join(fs, "filler")
			require.NoError(t, os.WriteFile(filler, make([]byte, 256<<10), 0o600))
			dir := filepath.Join(fs, "spool")
			opts := testOptions(t)
			opts.SegmentBytes = tt.segmentBytes
			opts.Logger = discardLogger
			// Observe where the real writes fail: a record into a segment,
			// or the header of a new one.
			var recordFails, headerFails atomic.Int32
			opts.writeAt = func(f *os.File, p []byte, off int64) (int, error) {
				n, err := f.WriteAt(p, off)
				switch {
				case err == nil:
				case off == 0:
					headerFails.Add(1)
				default:
					recordFails.Add(1)
				}
				return n, err
			}
			s := openT(t, dir, opts)

			rec := func(i int) Record {
				r := testRecord(i)
				r.Payload = make([]byte, 3000+i%500) // sizes that do not line up with pages
				return r
			}
			var acked []string
			var err error
			for i := 0; ; i++ {
				require.Less(t, i, 1000, "the disk never filled up")
				if _, err = s.Append(context.Background(), rec(i)); err != nil {
					break
				}
				acked = append(acked, rec(i).UID)
			}
			require.ErrorIs(t, err, ErrWrite)
			require.ErrorIs(t, err, syscall.ENOSPC)
			require.Greater(t, len(acked), 100)
			_, err = s.Append(context.Background(), rec(9999))
			require.ErrorIs(t, err, syscall.ENOSPC, "still full")
			st := s.Stats()
			require.GreaterOrEqual(t, st.WriteErrors, uint64(2))
			require.Equal(t, len(acked), st.Depth)
			require.Equal(t, diskSize(t, dir), st.DiskBytes, "segment files hold no bytes of failed appends")
			if tt.atHeader {
				require.Positive(t, headerFails.Load())
				require.Zero(t, recordFails.Load())
			} else {
				require.Positive(t, recordFails.Load())
				require.Zero(t, headerFails.Load())
			}

			require.NoError(t, os.Remove(filler))
			for i := 10000; i < 10010; i++ {
				_, err := s.Append(context.Background(), rec(i))
				require.NoError(t, err, "appends work again once space is back")
				acked = append(acked, rec(i).UID)
			}
			require.NoError(t, s.Close())

			s = openT(t, dir, opts)
			require.Empty(t, s.Recovery().Corrupt)
			require.Equal(t, acked, uids(readUnacked(t, s)))
			require.NoError(t, s.Close()) // before the tmpfs goes
		})
	}
}

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
