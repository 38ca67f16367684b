package minipulsar

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// BenchmarkFileStoreAppend measures durable appends (each waits for its
// fsync) through the group-commit writer: one appender (every append pays a
// whole fsync) and 64 concurrent appenders (they share fsyncs), with small
// unbatched entries and 100 KB entries (a client batch of 1000 messages of
// 100 B), on one topic and spread over 8 topics.
func BenchmarkFileStoreAppend(b *testing.B) {
	for _, size := range []int{100, 100 << 10} {
		for _, c := range []struct{ appenders, topics int }{{1, 1}, {64, 1}, {64, 8}} {
			name := fmt.Sprintf("entry=%dB/appenders=%d/topics=%d", size, c.appenders, c.topics)
			b.Run(name, func(b *testing.B) { benchAppend(b, size, c.appenders, c.topics) })
		}
	}
}

func benchAppend(b *testing.B, size, appenders, topics int) {
	fs, _, err := openFileStoreConfig(b.TempDir(), nil, defaultFileStoreConfig)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = fs.sync() }()
	type seq struct {
		sync.Mutex
		name string
		next uint64
	}
	seqs := make([]*seq, topics)
	for i := range seqs {
		seqs[i] = &seq{name: fmt.Sprintf("persistent://public/default/bench-%d", i)}
		if err := fs.putTopic(seqs[i].name, uint64(i+1), uint64(i+2)); err != nil {
			b.Fatal(err)
		}
	}
	data := make([]byte, size)
	// appendOne assigns the next id under the topic's lock and calls
	// appendEntry there, as the broker should, then waits for the fsync.
	appendOne := func(s *seq, done chan error) {
		s.Lock()
		id := s.next
		s.next++
		fs.appendEntry(s.name, id, data, "bench", int64(id), func(err error) { done <- err })
		s.Unlock()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
	b.SetBytes(int64(size))
	fsyncs0, batches0 := fs.fsyncs.Load(), fs.batches.Load()
	start := time.Now()
	if appenders == 1 {
		done := make(chan error, 1)
		for b.Loop() {
			appendOne(seqs[0], done)
		}
	} else {
		b.SetParallelism((appenders + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		var mu sync.Mutex
		n := 0
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			s := seqs[n%topics]
			n++
			mu.Unlock()
			done := make(chan error, 1)
			for pb.Next() {
				appendOne(s, done)
			}
		})
	}
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed, "entries/s")
	b.ReportMetric(float64(fs.fsyncs.Load()-fsyncs0)/elapsed, "fsyncs/s")
	b.ReportMetric(float64(b.N)/float64(max(fs.batches.Load()-batches0, 1)), "entries/commit")
}

// BenchmarkFileStoreProduce publishes 100 B messages with client batching
// through the real client to a broker with a data directory: the issue's
// 200k msg/s target, with every entry fsynced before its receipt.
// The in-memory broker runs the same for comparison.
func BenchmarkFileStoreProduce(b *testing.B) {
	b.Run("store=file", func(b *testing.B) { benchProduce(b, b.TempDir()) })
	b.Run("store=memory", func(b *testing.B) { benchProduce(b, "") })
}

func benchProduce(b *testing.B, dataDir string) {
	s := startPersist(b, Options{DataDir: dataDir})
	c := persistClient(b, s.ServiceURL())
	p, err := c.CreateProducer(pulsar.ProducerOptions{
		Topic: "bench-produce", BatchingMaxMessages: 1000, BatchingMaxSize: 1 << 20,
		BatchingMaxPublishDelay: 10 * time.Millisecond, MaxPendingMessages: 100000,
	})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 100)
	ctx := context.Background()
	var failed atomic.Int64
	cb := func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	b.SetBytes(int64(len(payload)))
	start := time.Now()
	for b.Loop() {
		p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: payload}, cb)
	}
	if err := p.FlushWithCtx(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start).Seconds()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d sends failed", n)
	}
	b.ReportMetric(float64(b.N)/elapsed, "msgs/s")
}
