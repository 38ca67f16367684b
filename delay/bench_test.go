package delay

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/redis/go-redis/v9"
)

// Benchmarks. The numbers and the commands that produced them are in
// docs/benchmarks.md, section "delay". Redis benchmarks use 100k messages
// unless DELAY_BENCH_1M=1 (the 1M setup takes a while).

var benchSizes = []int{100_000, 1_000_000}

// benchDelays returns n random delays in [1 s, 1 h).
func benchDelays(n int) []time.Duration {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	d := make([]time.Duration, n)
	for i := range d {
		d[i] = time.Second + time.Duration(r.Int64N(int64(time.Hour-time.Second)))
	}
	return d
}

// reportPerTimer adds per-timer metrics: each b.Loop iteration fills an
// empty structure with n timers, so ns/op is the cost of n inserts.
func reportPerTimer(b *testing.B, n int, s *sample) {
	ops := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/ops, "ns/timer")
	b.ReportMetric(float64(s.cpu().Nanoseconds())/ops, "cpu-ns/timer")
	b.ReportMetric(float64(s.mallocs())/ops, "allocs/timer")
}

// sample counts the process's CPU time and allocations from its start,
// leaving out what happens between pause and resume.
type sample struct {
	cpu0, paused      time.Duration
	mallocs0, pausedN uint64
	pausedAt          time.Duration
	pausedAtN         uint64
}

func startSample() *sample { return &sample{cpu0: cpuTime(), mallocs0: mallocs()} }

func (s *sample) pause() { s.pausedAt, s.pausedAtN = cpuTime(), mallocs() }

func (s *sample) resume() {
	s.paused += cpuTime() - s.pausedAt
	s.pausedN += mallocs() - s.pausedAtN
}

func (s *sample) cpu() time.Duration { return cpuTime() - s.cpu0 - s.paused }
func (s *sample) mallocs() uint64    { return mallocs() - s.mallocs0 - s.pausedN }

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// BenchmarkInsert fills an empty structure with n pending timers, due at
// random within an hour: our wheel, the runtime's timers (time.AfterFunc)
// and a binary heap (container/heap).
func BenchmarkInsert(b *testing.B) {
	for _, n := range benchSizes {
		delays := benchDelays(n)
		now := time.Now()
		dues := make([]time.Time, n)
		dueNs := make([]int64, n)
		for i, d := range delays {
			dues[i] = now.Add(d)
			dueNs[i] = dues[i].UnixNano()
		}

		b.Run(fmt.Sprintf("wheel/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			s := startSample()
			for b.Loop() {
				w, _ := NewWheel(WheelConfig{}, now)
				for i, due := range dues {
					w.Add(uint64(i), due)
				}
				if w.Len() != n {
					b.Fatal("lost timers")
				}
			}
			reportPerTimer(b, n, s)
		})

		b.Run(fmt.Sprintf("afterfunc/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			timers := make([]*time.Timer, n)
			noop := func() {}
			s := startSample()
			for b.Loop() {
				for i, d := range delays {
					timers[i] = time.AfterFunc(d, noop)
				}
				b.StopTimer()
				s.pause()
				for _, t := range timers {
					t.Stop()
				}
				s.resume()
				b.StartTimer()
			}
			reportPerTimer(b, n, s)
		})

		b.Run(fmt.Sprintf("heap/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			s := startSample()
			for b.Loop() {
				h := &timerHeap{}
				for i, due := range dueNs {
					heap.Push(h, heapItem{id: uint64(i), due: due})
				}
				if h.Len() != n {
					b.Fatal("lost timers")
				}
			}
			reportPerTimer(b, n, s)
		})
	}
}

type heapItem struct {
	id  uint64
	due int64
}

type timerHeap []heapItem

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(heapItem)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemoryPerTimer measures the live heap held by 1M pending timers
// (runtime.ReadMemStats after GC, before and after inserting), for delays
// spread over an hour and over a day. Run with -benchtime=1x.
func BenchmarkMemoryPerTimer(b *testing.B) {
	const n = 1_000_000
	for _, spread := range []time.Duration{time.Hour, 24 * time.Hour} {
		r := rand.New(rand.NewPCG(3, 4))
		now := time.Unix(1_700_000_000, 0)
		dues := make([]time.Time, n)
		for i := range dues {
			dues[i] = now.Add(time.Duration(r.Int64N(int64(spread))))
		}
		b.Run(fmt.Sprintf("wheel/spread=%s", spread), func(b *testing.B) {
			var per float64
			for b.Loop() {
				before := heapInUse()
				w, _ := NewWheel(WheelConfig{}, now)
				for i, due := range dues {
					w.Add(uint64(i), due)
				}
				after := heapInUse()
				per = float64(int64(after)-int64(before)) / n
				runtime.KeepAlive(w)
			}
			b.ReportMetric(per, "B/timer")
		})
		b.Run(fmt.Sprintf("afterfunc/spread=%s", spread), func(b *testing.B) {
			var per float64
			noop := func() {}
			for b.Loop() {
				timers := make([]*time.Timer, 0, n)
				before := heapInUse() // the slice of handles is not counted
				for _, due := range dues {
					timers = append(timers, time.AfterFunc(due.Sub(now), noop))
				}
				after := heapInUse()
				per = float64(int64(after)-int64(before)) / n
				for _, t := range timers {
					t.Stop()
				}
			}
			b.ReportMetric(per, "B/timer")
		})
		b.Run(fmt.Sprintf("heap/spread=%s", spread), func(b *testing.B) {
			var per float64
			for b.Loop() {
				before := heapInUse()
				h := &timerHeap{}
				for i, due := range dues {
					heap.Push(h, heapItem{id: uint64(i), due: due.UnixNano()})
				}
				after := heapInUse()
				per = float64(int64(after)-int64(before)) / n
				runtime.KeepAlive(h)
			}
			b.ReportMetric(per, "B/timer")
		})
	}
}

// BenchmarkLateness schedules 1M timers due at random instants (nanosecond
// resolution) within 2 s of a start that is not on a second boundary, then
// drives the wheel with a simulated clock that advances tick by tick, that
// is to each following second boundary, as the runner does. A timer's
// lateness is the simulated time of the Advance call that handed it out
// minus its requested due time: the rounding up to the one-second tick, and
// nothing else, since the simulated clock has no wake-up delay. Early
// timers (negative lateness) are counted and must be 0. ns/op is the CPU
// time of one whole run (1M Adds and the Advances).
func BenchmarkLateness(b *testing.B) {
	const n = 1_000_000
	start := time.Unix(1_700_000_000, 123_456_789)
	r := rand.New(rand.NewPCG(5, 6))
	dues := make([]time.Time, n)
	for i := range dues {
		dues[i] = start.Add(time.Duration(r.Int64N(int64(2 * time.Second))))
	}
	late := make([]time.Duration, 0, n)
	var early int
	b.ReportAllocs()
	for b.Loop() {
		late, early = late[:0], 0
		w, _ := NewWheel(WheelConfig{}, start)
		for i, due := range dues {
			w.Add(uint64(i), due)
		}
		var out []Expired
		for now := start.Truncate(time.Second).Add(time.Second); w.Len() > 0; now = now.Add(time.Second) {
			out = w.Advance(now, out[:0])
			for _, e := range out {
				d := now.Sub(dues[e.ID])
				if d < 0 {
					early++
				}
				late = append(late, d)
			}
		}
	}
	if len(late) != n {
		b.Fatalf("%d of %d timers fired", len(late), n)
	}
	slices.Sort(late)
	b.ReportMetric(float64(early), "early")
	b.ReportMetric(float64(late[n/2].Microseconds())/1e3, "p50-late-ms")
	b.ReportMetric(float64(late[n*99/100].Microseconds())/1e3, "p99-late-ms")
	b.ReportMetric(float64(late[n-1].Microseconds())/1e3, "max-late-ms")
}

// benchMessage is a typical billing timeout: 100-byte payload, key, two
// tags, two properties.
func benchMessage(i int, due time.Time) Message {
	return Message{
		UID:        fmt.Sprintf("01J%023d", i),
		Topic:      "persistent://billing/pay/order-timeouts",
		Key:        fmt.Sprintf("order-%08d", i),
		Tags:       []string{"PAY_1001", "TIMEOUT"},
		Properties: map[string]string{"currency": "EUR", "attempt": "1"},
		Payload:    []byte(strings.Repeat("x", 100)),
		EventTime:  due.Add(-15 * time.Minute),
		Due:        due,
		App:        "billing-core",
	}
}

// fillIndex schedules n messages due within the next hour through the
// schedule script, pipelined, and returns Redis's used_memory growth.
func fillIndex(b *testing.B, rdb *redis.Client, x *Index, n int) int64 {
	ctx := context.Background()
	if err := scheduleScript.Load(ctx, rdb).Err(); err != nil {
		b.Fatal(err)
	}
	before := usedMemory(b, rdb)
	now := time.Now()
	r := rand.New(rand.NewPCG(8, 9))
	const batch = 2000
	for i := 0; i < n; i += batch {
		p := rdb.Pipeline()
		for j := i; j < min(i+batch, n); j++ {
			m := benchMessage(j, now.Add(time.Duration(r.Int64N(int64(time.Hour)))))
			body, err := encodeMessage(&m)
			if err != nil {
				b.Fatal(err)
			}
			scheduleScript.EvalSha(ctx, p, []string{x.dueKey}, x.prefix, m.UID, dueSeconds(m.Due), body, m.Topic, m.Key)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return usedMemory(b, rdb) - before
}

func usedMemory(b *testing.B, rdb *redis.Client) int64 {
	return int64(infoField(b, rdb, "memory", "used_memory"))
}

// redisCPU is the CPU time the Redis server has used (user + system).
func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	s := infoField(b, rdb, "cpu", "used_cpu_user") + infoField(b, rdb, "cpu", "used_cpu_sys")
	return time.Duration(s * float64(time.Second))
}

func infoField(b *testing.B, rdb *redis.Client, section, field string) float64 {
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no %s in INFO %s", field, section)
	return 0
}

// BenchmarkIndexReload reloads every entry of an index into a fresh wheel
// (LoadRange over the whole range, pages of 10000): what a replica does on
// start. It also reports Redis memory per scheduled message (used_memory
// growth over the fill / n). 100k messages; 1M with DELAY_BENCH_1M=1.
func BenchmarkIndexReload(b *testing.B) {
	n := 100_000
	if os.Getenv("DELAY_BENCH_1M") == "1" {
		n = 1_000_000
	}
	srv := testredis.Start(b)
	rdb := srv.Client()
	x := NewIndex(rdb, IndexConfig{})
	grown := fillIndex(b, rdb, x, n)
	m := benchMessage(0, time.Now())
	body, _ := encodeMessage(&m)

	b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		goCPU, redis0 := cpuTime(), redisCPU(b, rdb)
		for b.Loop() {
			w, _ := NewWheel(WheelConfig{}, time.Now())
			got, err := x.LoadRange(ctx, time.Unix(0, 0), time.Now().Add(2*time.Hour), w.Add)
			if err != nil {
				b.Fatal(err)
			}
			if got != n || w.Len() != n {
				b.Fatalf("reloaded %d into a wheel of %d, want %d", got, w.Len(), n)
			}
		}
		b.StopTimer()
		ops := float64(b.N)
		b.ReportMetric(float64((cpuTime()-goCPU).Milliseconds())/ops, "go-cpu-ms/op")
		b.ReportMetric(float64((redisCPU(b, rdb)-redis0).Milliseconds())/ops, "redis-cpu-ms/op")
		b.ReportMetric(float64(grown)/float64(n), "redis-B/msg")
		b.ReportMetric(float64(len(body)), "body-B")
	})
}
