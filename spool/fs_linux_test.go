//go:build linux

package spool

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// onTmpfs reports whether dir is on a RAM file system, where fsync costs
// nothing and appenders have no time to queue behind it.
func onTmpfs(dir string) bool {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == tmpfsMagic
}

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
