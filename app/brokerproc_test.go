package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// childBroker is cmd/minipulsar run as a separate process on loopback.
// minipulsar keeps every message in memory; in the benchmark's own
// process that heap grows by tens of MB per second of load, and every
// later round pays for the sidecar's garbage collector and fresh pages
// on a bigger heap than the round before (tracing on and off alike). In
// its own process the broker's heap no longer moves the sidecar's
// numbers; its CPU is still on the same cores and still counted (see
// childUsage).
type childBroker struct {
	pid        int
	serviceURL string
	adminURL   string
}

// benchChildPID is the pid of the child broker whose CPU and page
// faults runWorkers adds to its own (0: none).
var benchChildPID atomic.Int64

var brokerURLs = regexp.MustCompile(`serviceURL=(pulsar://\S+) adminURL=(http://\S+)`)

// startChildBroker builds cmd/minipulsar into b.TempDir and starts it on
// 127.0.0.1 with ports chosen by the kernel; it is stopped when b ends.
func startChildBroker(b *testing.B) *childBroker {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "minipulsar")
	build := exec.Command("go", "build", "-o", bin, "github.com/pulsar-sidecar/pulsar-sidecar/cmd/minipulsar")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build minipulsar: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-level", "info",
		"--auto-create-namespaces") // as minipulsar.RunT: the benchmarks use tenant "bench"
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		b.Fatalf("minipulsar stderr: %v", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		b.Fatalf("start minipulsar: %v", err)
	}
	b.Cleanup(func() {
		benchChildPID.Store(0)
		cancel()
		_ = cmd.Wait()
	})
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := brokerURLs.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m
				sent = true
			}
		}
		if !sent {
			close(found)
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case m, ok := <-found:
		if !ok {
			b.Fatal("minipulsar exited without announcing its addresses")
		}
		benchChildPID.Store(int64(cmd.Process.Pid))
		return &childBroker{pid: cmd.Process.Pid, serviceURL: m[1], adminURL: m[2]}
	case <-time.After(30 * time.Second):
		b.Fatal("minipulsar did not announce its addresses in 30 s")
	}
	return nil
}

// childUsage is the CPU time (user plus system) and minor page faults of
// the child broker so far, from /proc/<pid>/stat; zero without a child.
func childUsage() (time.Duration, int64) {
	pid := benchChildPID.Load()
	if pid == 0 {
		return 0, 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after it start at the state (field 3).
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, 0
	}
	minflt, _ := strconv.ParseInt(f[7], 10, 64) // field 10
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14, clock ticks
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	const ticks = 100                           // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, minflt
}
