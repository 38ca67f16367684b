package spool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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

	"github.com/stretchr/testify/require"
)

const (
	crashChildEnv = "SPOOL_CRASH_CHILD_DIR"
	crashRunEnv   = "SPOOL_CRASH_CHILD_RUN"
)

// crashChildKeeps says which records the child never acknowledges, so that
// unacknowledged records pile up across rounds and must survive each one.
func crashChildKeeps(uid string) bool { return strings.HasSuffix(uid, "7") }

// runCrashChild is the process TestCrashKeepsEveryAcknowledgedRecord kills.
// Four goroutines append in a loop and print "A <uid>" after each Append
// returns; a replayer prints "K <uid>" before it acknowledges a record. It
// runs until SIGKILL.
func runCrashChild(dir string) int {
	s, err := Open(dir, Options{
		SegmentBytes:       16 << 10, // many segments to create and delete
		CheckpointInterval: 3 * time.Millisecond,
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	run := os.Getenv(crashRunEnv)
	var mu sync.Mutex
	emit := func(kind, what string) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = os.Stdout.WriteString(kind + " " + what + "\n") // one write per line, no buffering
	}
	ctx := context.Background()
	go func() {
		r := s.NewReader()
		for {
			p, rec, err := r.Next(ctx)
			if err != nil {
				emit("E", "next: "+err.Error())
				return
			}
			if crashChildKeeps(rec.UID) {
				continue
			}
			emit("K", rec.UID)
			if err := s.Ack(p); err != nil {
				emit("E", "ack: "+err.Error())
				return
			}
		}
	}()
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				uid := fmt.Sprintf("%s-%d-%d", run, g, i)
				rec := Record{UID: uid, Topic: "persistent://t/n/crash", Payload: bytes.Repeat([]byte{byte(i)}, 100+i%300)}
				if _, err := s.Append(ctx, rec); err != nil {
					emit("E", "append: "+err.Error())
					return
				}
				emit("A", uid)
			}
		}()
	}
	time.Sleep(time.Hour)
	return 0
}

// TestCrashKeepsEveryAcknowledgedRecord kills a process that appends and
// acknowledges at full speed with SIGKILL, three times over the same
// directory, and checks after each crash that every record whose Append
// returned and whose acknowledgement never started is replayed.
//
// SIGKILL loses the process but not the page cache, so this proves the
// ordering of writes, acks, checkpoints and deletions, not that fsync
// reaches the platter; power loss is not simulated.
func TestCrashKeepsEveryAcknowledgedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	appended := map[string]bool{}
	ackStarted := map[string]bool{}
	for round := range 3 {
		var stderr bytes.Buffer // read only after Wait
		var childErrs []string
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("%s=r%d", crashRunEnv, round))
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
		handle := func(line string) {
			kind, uid, _ := strings.Cut(line, " ")
			switch kind {
			case "A":
				appended[uid] = true
			case "K":
				ackStarted[uid] = true
			default:
				childErrs = append(childErrs, line)
			}
		}
		// Let the child get going, then kill it at a random moment.
		want := len(appended) + 300 + rand.IntN(500)
		deadline := time.After(60 * time.Second)
		for len(appended) < want {
			select {
			case line, ok := <-lines:
				if !ok {
					_ = cmd.Wait()
					t.Fatalf("child exited early: %q\n%s", childErrs, stderr.String())
				}
				handle(line)
			case <-deadline:
				_ = cmd.Process.Kill()
				for range lines {
				}
				_ = cmd.Wait()
				t.Fatalf("child too slow: %q\n%s", childErrs, stderr.String())
			}
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		for line := range lines {
			handle(line)
		}
		var exitErr *exec.ExitError
		require.True(t, errors.As(cmd.Wait(), &exitErr), "the child must die of the signal")
		require.Empty(t, childErrs, "child stderr:\n%s", stderr.String())

		s := openT(t, dir, testOptions(t))
		rep := s.Recovery()
		for _, c := range rep.Corrupt {
			t.Logf("round %d: set aside %+v", round, c)
		}
		replayed := map[string]bool{}
		for _, g := range readUnacked(t, s) {
			require.False(t, replayed[g.rec.UID], "replayed twice in one pass: %s", g.rec.UID)
			replayed[g.rec.UID] = true
		}
		var missing []string
		again, unknown := 0, 0
		for uid := range appended {
			if !ackStarted[uid] && !replayed[uid] {
				missing = append(missing, uid)
			}
		}
		for uid := range replayed {
			switch {
			case ackStarted[uid]:
				again++
			case !appended[uid]:
				unknown++ // written, but killed before its "A" line
			}
		}
		require.Empty(t, missing, "round %d: acknowledged appends lost", round)
		t.Logf("round %d: %d appended, %d acks started, %d replayed (%d acknowledged again after the crash, %d never reported), %d segments",
			round, len(appended), len(ackStarted), len(replayed), again, unknown, s.Stats().Segments)
		require.NoError(t, s.Close())
	}
}
