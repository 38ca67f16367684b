package minipulsar

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// Benchmarks through the real pulsar-client-go. Run with
//
//	go test -run '^$' -bench 'Client' -benchtime 1x ./minipulsar/
//
// (each iteration moves benchMessages messages; -benchtime 1x runs one).

const benchMessages = 1_000_000

func benchClient(b *testing.B, s *Server) pulsar.Client {
	b.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.ServiceURL(), Logger: quietLogger{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

// produceAll publishes n 100-byte messages with batching and waits for
// every receipt.
func produceAll(b *testing.B, c pulsar.Client, topic string, n int) {
	b.Helper()
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, MaxPendingMessages: 10000})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	payload := make([]byte, 100)
	var failed atomic.Int64
	ctx := context.Background()
	for i := 0; i < n; i++ {
		p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: payload}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := p.FlushWithCtx(context.Background()); err != nil {
		b.Fatal(err)
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d sends failed", f)
	}
}

// BenchmarkClientProduceConsume: 1M messages of 100 B with batching,
// produced then consumed (receive and ack) through the real client.
func BenchmarkClientProduceConsume(b *testing.B) {
	s := NewServer(Options{})
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := benchClient(b, s)
	var produceSecs, consumeSecs float64
	iter := 0
	for b.Loop() {
		iter++
		topic := fmt.Sprintf("bench-%d", iter)
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		produceAll(b, c, topic, benchMessages)
		produceSecs += time.Since(start).Seconds()

		start = time.Now()
		ctx := context.Background()
		for i := 0; i < benchMessages; i++ {
			m, err := cons.Receive(ctx)
			if err != nil {
				b.Fatal(err)
			}
			_ = cons.Ack(m)
		}
		consumeSecs += time.Since(start).Seconds()
		cons.Close()
	}
	b.ReportMetric(float64(benchMessages*iter)/produceSecs, "produce-msg/s")
	b.ReportMetric(float64(benchMessages*iter)/consumeSecs, "consume-msg/s")
}

// BenchmarkClientSyncPublish: one synchronous Send at a time (each is its
// own batch, flushed at once); reports latency percentiles.
func BenchmarkClientSyncPublish(b *testing.B) {
	s := NewServer(Options{})
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := benchClient(b, s)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "sync-bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	payload := make([]byte, 100)
	ctx := context.Background()
	lat := make([]time.Duration, 0, 1<<16)
	for b.Loop() {
		start := time.Now()
		if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: payload}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkHeapPerMessage stores 1M messages of 100 B and reports the
// broker's heap bytes per message beyond the stored payload and metadata,
// for batched (the client default) and unbatched publishing.
func BenchmarkHeapPerMessage(b *testing.B) {
	for _, batched := range []bool{true, false} {
		n := benchMessages
		if !batched {
			n = 200_000 // unbatched publishing is one round trip per message
		}
		b.Run(fmt.Sprintf("batched=%v", batched), func(b *testing.B) {
			for b.Loop() {
				s := NewServer(Options{})
				if err := s.Start(); err != nil {
					b.Fatal(err)
				}
				c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.ServiceURL(), Logger: quietLogger{}})
				if err != nil {
					b.Fatal(err)
				}
				before := heapInUse()
				p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "heap", DisableBatching: !batched, MaxPendingMessages: 10000})
				if err != nil {
					b.Fatal(err)
				}
				payload := make([]byte, 100)
				for i := 0; i < n; i++ {
					p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: payload}, nil)
				}
				if err := p.FlushWithCtx(context.Background()); err != nil {
					b.Fatal(err)
				}
				p.Close()
				c.Close()
				after := heapInUse()
				t, _ := s.getTopic(mustTopic("heap"), false)
				var stored int64
				t.mu.Lock()
				for _, e := range t.entries {
					stored += int64(len(e.data))
				}
				entries := len(t.entries)
				t.mu.Unlock()
				b.ReportMetric(float64(int64(after-before)-stored)/float64(n), "overhead-B/msg")
				b.ReportMetric(float64(stored)/float64(n), "stored-B/msg")
				b.ReportMetric(float64(n)/float64(entries), "msgs/entry")
				runtime.KeepAlive(t)
				_ = s.Close()
			}
		})
	}
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mustTopic(s string) topicName {
	n, err := parseTopic(s)
	if err != nil {
		panic(err)
	}
	return n
}
