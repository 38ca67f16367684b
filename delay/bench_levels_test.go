package delay

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// Level benchmarks; results and commands in docs/benchmarks.md, section
// "delay levels".

// BenchmarkLevelBacklogMemory checks that a level forwarder's memory does
// not depend on how many messages wait in its level. The broker runs in its
// own process (the cmd/minipulsar binary, built here), so this process's
// heap is the sidecar side only. Three levels are filled through the
// engine's produce path: one stays empty, one gets 1,000 messages, one gets
// DELAY_BENCH_LEVEL_N (default 1,000,000), all due in an hour or more.
// Each iteration attaches a fresh client and engine to one level at a
// time, waits for the forwarder to hold the head and its receiver queue to
// fill, and records the heap after GC.
func BenchmarkLevelBacklogMemory(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("DELAY_BENCH_LEVEL_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("DELAY_BENCH_LEVEL_N: %v", err)
		}
	}
	url, pid := startBrokerProcess(b)
	ctx := context.Background()
	levels := LevelsConfig{Levels: []string{"1h", "2h", "3h"}}

	fillStart := time.Now()
	fillLevels(b, url, levels, map[string]int{"1h": 1000, "2h": n})
	b.Logf("filled %d + 1000 level messages in %s; broker RSS %d MiB", n, time.Since(fillStart).Round(time.Millisecond), rssKiB(pid)/1024)

	before := heapAfterGC() // this process after the fill's client is closed: for reference only
	attach := func(level string, want int) uint64 {
		client, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, Logger: plog.DefaultNopLogger()})
		if err != nil {
			b.Fatal(err)
		}
		defer client.Close()
		pub := &testPublisher{client: client, producers: map[string]pulsar.Producer{}, fail: map[string]int{}}
		defer pub.close()
		cfg := levels
		cfg.Levels = []string{level}
		e, err := NewEngine(EngineOptions{Client: client, Publisher: pub, Config: Config{Levels: cfg, Logger: quiet}})
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		if err := e.Start(ctx); err != nil {
			b.Fatal(err)
		}
		if want > 0 {
			for deadline := time.Now().Add(30 * time.Second); e.LevelStats()[0].Waiting.IsZero(); {
				if time.Now().After(deadline) {
					b.Fatalf("level %s: the forwarder never took the head", level)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		time.Sleep(time.Second) // let the receiver queue fill (a benchmark, not a test)
		return heapAfterGC()
	}

	var empty, small, large float64
	for b.Loop() {
		e := attach("3h", 0)
		s := attach("1h", 1000)
		l := attach("2h", n)
		b.Logf("heap after GC with the forwarder attached: to an empty level %d B, to 1,000 messages %d B, to %d messages %d B (%+d B vs empty)",
			e, s, n, l, int64(l)-int64(e))
		empty += float64(e)
		small += float64(s)
		large += float64(l)
	}
	ops := float64(b.N)
	b.ReportMetric(float64(before), "heap-before-B")
	b.ReportMetric(empty/ops, "heap-empty-level-B")
	b.ReportMetric(small/ops, "heap-1k-level-B")
	b.ReportMetric(large/ops, "heap-large-level-B")
	b.ReportMetric((large-empty)/ops, "large-minus-empty-B")
	b.ReportMetric(float64(n), "large-level-messages")
	b.ReportMetric(float64(rssKiB(pid))/1024, "broker-RSS-MiB")
}

// fillLevels produces counts[level] typical messages into each level
// through the engine (not started), with a batching producer per topic.
func fillLevels(b *testing.B, url string, levels LevelsConfig, counts map[string]int) {
	b.Helper()
	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, Logger: plog.DefaultNopLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	pub := &testPublisher{client: client, producers: map[string]pulsar.Producer{}, fail: map[string]int{}}
	defer pub.close()
	e, err := NewEngine(EngineOptions{Client: client, Publisher: pub, Config: Config{Levels: levels, Logger: quiet}})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	now := time.Now()
	for level, count := range counts {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
		)
		wg.Add(count)
		for i := range count {
			req := benchLevelRequest(i, level, now)
			e.ScheduleAsync(ctx, req, func(_ Result, err error) {
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
				wg.Done()
			})
		}
		wg.Wait()
		if firstErr != nil {
			b.Fatalf("fill level %s: %v", level, firstErr)
		}
	}
}

// benchLevelRequest is a typical order timeout: 100-byte payload, a unique
// key, two tags, two properties.
func benchLevelRequest(i int, level string, accepted time.Time) Request {
	return Request{
		UID: fmt.Sprintf("0190c3a4-7b1e-7c3d-8e2f-%012d", i), App: "billing",
		Topic: "persistent://bill/pay/order-timeouts", Key: "order-" + strconv.Itoa(i),
		Tags:       []string{"PAY_1001", "TIMEOUT"},
		Properties: map[string]string{"orderId": strconv.Itoa(i), "merchant": "m-42"},
		Payload:    []byte(strings.Repeat("x", 100)), Level: level, AcceptedAt: accepted,
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// startBrokerProcess builds cmd/minipulsar and runs it on a free port until
// the benchmark ends.
func startBrokerProcess(b *testing.B) (url string, pid int) {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "minipulsar")
	build := exec.Command("go", "build", "-o", bin, "github.com/pulsar-sidecar/pulsar-sidecar/cmd/minipulsar")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build minipulsar: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(bin, "--addr", addr, "--admin-addr", "-", "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("minipulsar did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "pulsar://" + addr, cmd.Process.Pid
}

// rssKiB is a process's resident set size (Linux), 0 when unknown.
func rssKiB(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kib
		}
	}
	return 0
}

// BenchmarkLevelForward measures how fast one level's forwarder drains a
// backlog of due messages (each checked against the cancel marks in Redis,
// forwarded, acknowledged), by the number of forwards in flight. Broker
// (in process), Redis and forwarder share the machine. Forwards go
// unbatched, each flushed at once, as produce.Pool sends a lone message.
func BenchmarkLevelForward(b *testing.B) {
	const n = 20_000
	for _, inflight := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			srv := minipulsar.RunT(b)
			rdb := testredis.Start(b).Client()
			client := newClient(b, srv.ServiceURL())
			pub := newPublisher(b, client)
			pub.unbatched = true // the sidecar's pool flushes a lone message at once
			clock := newFakeClock(base)
			ctx := context.Background()
			var total time.Duration
			i := 0
			for b.Loop() {
				b.StopTimer()
				i++
				cfg := LevelsConfig{Levels: []string{"1s"}, MaxInFlight: inflight,
					Topic: fmt.Sprintf("persistent://public/psc-delay/run%d-{level}", i)}
				e, err := NewEngine(EngineOptions{Client: client, Publisher: pub, Redis: rdb,
					Config: Config{Levels: cfg, Clock: clock, Logger: quiet, Mode: ModeNative}})
				if err != nil {
					b.Fatal(err)
				}
				for j := range n {
					if _, err := e.Schedule(ctx, benchLevelRequest(j, "1s", base)); err != nil {
						b.Fatal(err)
					}
				}
				clock.Set(base.Add(time.Duration(i) * time.Hour)) // everything is due
				b.StartTimer()
				start := time.Now()
				if err := e.Start(ctx); err != nil {
					b.Fatal(err)
				}
				for e.LevelStats()[0].Forwarded < n {
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				b.StopTimer()
				_ = e.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "msg/s")
		})
	}
}
