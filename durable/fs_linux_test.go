//go:build linux

package durable

import (
	"context"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
)

// mountTmpfs mounts a tmpfs of the given size on a fresh directory, or
// skips where mounting is not allowed (it needs root or CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): run as root to test a real full disk; TestSpoolFull covers the size limit", err)
	}
	t.Cleanup(func() { require.NoError(t, syscall.Unmount(dir, 0)) })
	return dir
}

// TestDiskFull spools onto a real 1 MiB file system until it is full. Each
// message the disk cannot take gets ErrSpoolFull (wrapping ENOSPC, a clear
// 503 for the proxy), readiness fails while no cluster is up, and every
// message answered "spooled" before, during and after the failures is
// replayed once the cluster is back.
func TestDiskFull(t *testing.T) {
	fs := mountTmpfs(t, "1m")
	primary := deadBroker(t)
	pc := connect(t, primary, "primary")
	opts := testOptions(t, filepath.Join(fs, "spool"), pc, nil)
	opts.Spool = spool.Options{SegmentBytes: 128 << 10, CheckpointInterval: 20 * time.Millisecond}
	s := start(t, opts)

	var mu sync.Mutex
	var acked []string
	var failures []error
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < 8*1000; i += 8 {
				mu.Lock()
				enough := len(failures) >= 20
				mu.Unlock()
				if enough {
					return
				}
				m := newMessage(i, testTopic)
				m.Payload = make([]byte, 3000+i%700) // sizes that do not line up with pages
				rc, err := send(t, s, m, 5*time.Second)
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					assert.Equal(t, produce.StatusSpooled, rc.Status)
					acked = append(acked, m.UID)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.GreaterOrEqual(t, len(failures), 20, "the disk never filled up")
	for _, err := range failures {
		require.ErrorIs(t, err, ErrSpoolFull)
		require.ErrorIs(t, err, syscall.ENOSPC)
	}
	require.ErrorIs(t, s.Ready(context.Background()), ErrSpoolFull)
	t.Logf("%d messages spooled on a 1 MiB disk, %d refused with %v", len(acked), len(failures), failures[0])

	require.NoError(t, primary.Start())
	waitFor(t, 30*time.Second, "the replay", func() bool { return s.Health().Spool.Depth == 0 })
	got := stored(t, primary, testTopic)
	extra := 0
	for _, uid := range acked {
		require.GreaterOrEqual(t, got[uid], 1, "spooled message %s lost", uid)
		extra += got[uid] - 1
	}
	// Replay is at least once (ADR 010, ADR 050): a replay attempt that
	// timed out on a slow machine may still reach the broker, and the next
	// pass sends the record again under the same uid. Every such copy is a
	// late acknowledgement the sender counted; any other copy is a bug.
	// (The late acknowledgement may reach the sender just after the broker
	// stored the copy, so wait a little for the count.)
	waitFor(t, 5*time.Second, "a late acknowledgement for every copy beyond the first", func() bool {
		return metricValue(t, opts.Registerer.(*prometheus.Registry), "psc_late_acks_total",
			map[string]string{"cluster": "primary"}) >= float64(extra)
	})
	require.NoError(t, s.Ready(context.Background()))
}
