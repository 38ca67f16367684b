package durable

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
)

const (
	crashChildEnv = "DURABLE_CRASH_CHILD_URLS" // "primaryURL drURL"
	crashDirEnv   = "DURABLE_CRASH_CHILD_DIR"
	crashTopic    = "persistent://pay/settle/crash"
)

// runCrashChild is the process TestSIGKILLWhileSpooling kills: a Sender
// whose clusters are both down, fed by eight goroutines. It prints
// "A <uid>" for every message answered "spooled" (one write per line, so a
// line is printed only after the answer) and runs until SIGKILL.
func runCrashChild(urls, dir string) int {
	primaryURL, drURL, _ := strings.Cut(urls, " ")
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	sender := func(url, name string) produce.Sender {
		client, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, OperationTimeout: 2 * time.Second,
			Logger: pulsarlog.NewLoggerWithSlog(quiet), MetricsRegisterer: prometheus.NewRegistry()})
		if err != nil {
			panic(err)
		}
		return &produce.PulsarSender{Pool: produce.NewPool(client, produce.PoolOptions{SendTimeout: 2 * time.Second, Logger: quiet}), Cluster: name}
	}
	s, err := New(Options{
		Primary:        Cluster{Sender: sender(primaryURL, "primary")},
		DR:             &Cluster{Sender: sender(drURL, "dr")},
		SpoolDir:       dir,
		Spool:          spool.Options{SegmentBytes: 32 << 10, CheckpointInterval: 5 * time.Millisecond},
		AttemptTimeout: 200 * time.Millisecond,
		Logger:         logger,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "new:", err)
		return 2
	}
	var mu sync.Mutex
	emit := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = os.Stdout.WriteString(line + "\n")
	}
	for g := range 8 {
		go func() {
			for i := g; ; i += 8 {
				m := newMessage(i, crashTopic)
				ch := make(chan result, 1)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				s.SendAsync(ctx, m, func(rc produce.Receipt, err error) { ch <- result{rc, err} })
				r := <-ch
				cancel()
				switch {
				case r.err != nil:
					emit("E " + r.err.Error())
				case r.rc.Status != produce.StatusSpooled:
					emit("E unexpected status " + string(r.rc.Status))
				default:
					emit("A " + m.UID)
				}
			}
		}()
	}
	time.Sleep(time.Hour)
	return 0
}

// TestSIGKILLWhileSpooling runs a sidecar Sender as a real child process
// with both clusters down, so that every message is spooled, and kills it
// with SIGKILL at a random moment, twice over the same spool directory.
// Then a new Sender on that directory, with the primary back, must replay
// every message the child answered "spooled": zero loss.
func TestSIGKILLWhileSpooling(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	primary, dr := deadBroker(t), deadBroker(t)
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := range 2 {
		var stderr bytes.Buffer // read only after Wait
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+primary.ServiceURL()+" "+dr.ServiceURL(), crashDirEnv+"="+dir)
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var childErrs []string
		want := len(acked) + 200 + rand.IntN(400)
		deadline := time.After(60 * time.Second)
		for len(acked) < want {
			select {
			case line, ok := <-lines:
				if !ok {
					_ = cmd.Wait()
					t.Fatalf("round %d: child exited early: %q\n%s", round, childErrs, stderr.String())
				}
				if uid, ok := strings.CutPrefix(line, "A "); ok {
					acked[uid] = true
				} else {
					childErrs = append(childErrs, line)
				}
			case <-deadline:
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("round %d: only %d of %d messages spooled in 60s: %q\n%s", round, len(acked), want, childErrs, stderr.String())
			}
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		for line := range lines { // what the child printed before it died counts too
			if uid, ok := strings.CutPrefix(line, "A "); ok {
				acked[uid] = true
			}
		}
		err = cmd.Wait()
		require.Error(t, err, "the child must have been killed")
		require.Empty(t, childErrs, "the child's answers other than spooled")
		t.Logf("round %d: killed after %d spooled messages in total", round, len(acked))
	}

	require.NoError(t, primary.Start())
	pc := connect(t, primary, "primary")
	dc := connect(t, dr, "dr") // still down: the replay must use the primary
	opts := testOptions(t, dir, pc, dc)
	s := start(t, opts)
	rec := s.SpoolRecovery()
	t.Logf("recovery: %d records in %d segments, %d acknowledged, %d torn tails", rec.Records, rec.Segments, rec.Acked, len(rec.Corrupt))
	waitFor(t, 60*time.Second, "the spool to be replayed", func() bool { return s.Health().Spool.Depth == 0 })

	got := stored(t, primary, crashTopic)
	var missing []string
	for uid := range acked {
		if got[uid] == 0 {
			missing = append(missing, uid)
		}
	}
	require.Empty(t, missing, "%d of %d spooled messages were not replayed", len(missing), len(acked))
	t.Logf("replayed %d distinct messages (%d spooled and acknowledged by the child)", len(got), len(acked))
}
