package tracer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// benchEvent is a ~300-byte delivered event, the common shape on a busy
// consume path.
func benchEvent(i int) Event {
	return Event{
		Type:         Delivered,
		UID:          "01J" + strconv.Itoa(1_000_000_000+i),
		MessageID:    "CAEQ" + strconv.Itoa(i) + ":0:-1",
		Topic:        "persistent://billing/pay/orders",
		Key:          "order-" + strconv.Itoa(i%100_000),
		Tags:         []string{"PAY_" + strconv.Itoa(1000+i%1000)},
		App:          "settlement",
		ClientIP:     "10.12.3.45",
		Node:         "sidecar-7d9f-2",
		Cluster:      "primary",
		Subscription: "settlement-" + strconv.Itoa(i%4),
		Consumer:     "settlement-worker-17",
		Time:         time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Microsecond),
		Latency:      1500 * time.Microsecond,
		Attempt:      i % 3,
	}
}

type nopSink struct{}

func (nopSink) Write(context.Context, []Event) error { return nil }

// BenchmarkPipelineRecord measures what Record costs the data plane:
//   - enqueue: into a queue with room (drained with the timer stopped);
//   - drop: queue and overflow buffer full, the event is counted and dropped;
//   - running: a started pipeline whose writer drains into a sink that does
//     nothing; Record in a tight loop outruns the writer (which computes a
//     SHA-256 id per event), so this is the overloaded case, with the share
//     of events dropped reported;
//   - running-parallel: the same from every core.
func BenchmarkPipelineRecord(b *testing.B) {
	ev := benchEvent(1)
	b.Run("enqueue", func(b *testing.B) {
		p := benchPipeline(b, 1<<16)
		b.ReportAllocs()
		for b.Loop() {
			if len(p.queue) == cap(p.queue) {
				b.StopTimer()
				for len(p.queue) > 0 {
					<-p.queue
				}
				b.StartTimer()
			}
			p.Record(ev)
		}
	})
	b.Run("drop", func(b *testing.B) {
		p := benchPipeline(b, 16)
		for range 32 {
			p.Record(ev)
		}
		b.ReportAllocs()
		for b.Loop() {
			p.Record(ev)
		}
		b.StopTimer()
		for len(p.queue) > 0 {
			<-p.queue
		}
		for len(p.overflow) > 0 {
			<-p.overflow
		}
	})
	b.Run("running", func(b *testing.B) {
		p := benchPipeline(b, 0)
		p.Start()
		b.ReportAllocs()
		for b.Loop() {
			p.Record(ev)
		}
		b.StopTimer()
		reportDrops(b, p)
	})
	b.Run("running-parallel", func(b *testing.B) {
		p := benchPipeline(b, 0)
		p.Start()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.Record(ev)
			}
		})
		b.StopTimer()
		reportDrops(b, p)
	})
}

func benchPipeline(b *testing.B, queue int) *Pipeline {
	p, err := NewPipeline(Options{Sink: nopSink{}, Dir: b.TempDir(), QueueSize: queue, OverflowSize: queue,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func reportDrops(b *testing.B, p *Pipeline) {
	if err := p.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	st := p.Stats()
	b.ReportMetric(float64(st.Dropped())/float64(st.Recorded+st.Dropped()), "dropped/op")
}

// BenchmarkSQLiteWrite is the embedded store's ingest rate in batches, each
// batch one transaction of new events (ids computed as the pipeline does,
// outside the timer's share: the pipeline computes them before the sink).
// schema=v1 is the layout before schema version 2 (rowid table, unique text
// id, five secondary indexes), schema=v2 the (ts, id) table with an index on
// (topic) alone, schema=v3 the current one (the topic index carries the
// uid), so that one run compares them on the same machine state.
// cpu-us/event is the writer thread's CPU time, steadier than events/s on a
// busy machine. Run with a fixed count, e.g. -benchtime 200x, so every
// sub-benchmark writes the same number of events.
func BenchmarkSQLiteWrite(b *testing.B) {
	type writer interface {
		Write(context.Context, []Event) error
		Close() error
	}
	schemas := []struct {
		name string
		open func(path string) (writer, error)
	}{
		{"v1", func(path string) (writer, error) { return openSQLiteV1(context.Background(), path) }},
		{"v2", func(path string) (writer, error) { return openSQLiteV2(context.Background(), path) }},
		{"v3", func(path string) (writer, error) { return OpenSQLite(context.Background(), path) }},
	}
	for _, size := range []int{500, 2000} {
		for _, sc := range schemas {
			b.Run(fmt.Sprintf("schema=%s/batch=%d", sc.name, size), func(b *testing.B) {
				dir := b.TempDir()
				s, err := sc.open(filepath.Join(dir, "trace.db"))
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = s.Close() }()
				batch := make([]Event, size)
				n := 0
				var elapsed, cpu time.Duration
				for b.Loop() {
					b.StopTimer()
					for i := range batch {
						batch[i] = benchEvent(n)
						batch[i].ID = ComputeID(&batch[i])
						n++
					}
					b.StartTimer()
					t0 := time.Now()
					var err error
					cpu += measureCPU(func() { err = s.Write(context.Background(), batch) })
					if err != nil {
						b.Fatal(err)
					}
					elapsed += time.Since(t0)
				}
				b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
				// The writer thread's CPU time: what the write costs, even
				// when other processes share the cores.
				b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(n), "cpu-us/event")
				b.ReportMetric(float64(dirSize(b, dir))/float64(n), "disk-B/event")
			})
		}
	}
}

// BenchmarkSQLiteByUID is a timeline lookup in a store of 200k events.
func BenchmarkSQLiteByUID(b *testing.B) {
	s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "trace.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	const total = 200_000
	batch := make([]Event, 1000)
	for n := 0; n < total; {
		for i := range batch {
			batch[i] = benchEvent(n)
			n++
		}
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		res, err := s.ByUID(context.Background(), benchEvent(i*7919%total).UID, Page{})
		if err != nil || len(res.Events) != 1 {
			b.Fatal(err, len(res.Events))
		}
		i++
	}
}

func dirSize(b *testing.B, dir string) int64 {
	var total int64
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			total += info.Size()
		}
	}
	return total
}

// BenchmarkOutboxSpill appends records of 500 events to the outbox, as the
// pipeline does while the sink is down (events with ids, from a failed
// write) or while the ingest budget parks batches (no ids yet): encode,
// checksum, write.
func BenchmarkOutboxSpill(b *testing.B) {
	for _, ids := range []bool{false, true} {
		for _, syncEach := range []bool{false, true} {
			b.Run(fmt.Sprintf("ids=%v/fsync-each=%v", ids, syncEach), func(b *testing.B) {
				ob, err := openOutbox(b.TempDir(), 64<<20, -1, syncEach)
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = ob.close() }()
				batch := make([]Event, 500)
				for i := range batch {
					batch[i] = benchEvent(i)
					if ids {
						batch[i].ID = ComputeID(&batch[i])
					}
				}
				var buf []byte
				var bytes int64
				start := time.Now()
				n := 0
				for b.Loop() {
					buf = appendRecord(buf[:0], batch)
					if err := ob.append(buf, batch[0].Time.UnixMicro()); err != nil {
						b.Fatal(err)
					}
					bytes += int64(len(buf))
					n += len(batch)
				}
				elapsed := time.Since(start)
				b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
				b.ReportMetric(float64(bytes)/float64(n), "B/event")
				b.SetBytes(int64(len(buf)))
			})
		}
	}
}

// BenchmarkOutboxReplay reads records of 500 events back from a segment
// file: read, verify the checksum, decode. The sink is left out.
func BenchmarkOutboxReplay(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "1.seg")
	batch := make([]Event, 500)
	for i := range batch {
		batch[i] = benchEvent(i)
		batch[i].ID = ComputeID(&batch[i])
	}
	var file []byte
	for range 100 {
		file = appendRecord(file, batch)
	}
	if err := os.WriteFile(path, file, 0o600); err != nil {
		b.Fatal(err)
	}
	r, err := openSegment(path, 0)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	start := time.Now()
	b.SetBytes(int64(len(file) / 100))
	for b.Loop() {
		evs, err := r.next()
		if errors.Is(err, io.EOF) {
			_ = r.close()
			if r, err = openSegment(path, 0); err != nil {
				b.Fatal(err)
			}
			evs, err = r.next()
		}
		if err != nil {
			b.Fatal(err)
		}
		n += len(evs)
	}
	_ = r.close()
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkPipelineReplayIntoSQLite is the outbox drained into the embedded
// store by the pipeline's replayer, end to end.
func BenchmarkPipelineReplayIntoSQLite(b *testing.B) {
	s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "trace.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	p, err := NewPipeline(Options{Sink: s, Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()
	batch := make([]Event, 500)
	n := 0
	var buf []byte
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		for i := range batch {
			batch[i] = benchEvent(n)
			batch[i].ID = ComputeID(&batch[i])
			n++
		}
		buf = p.spill(buf, batch)
		b.StartTimer()
		t0 := time.Now()
		if err := p.replayAll(); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
}
