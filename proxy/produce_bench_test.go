package proxy

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// ackSender acknowledges every message from one goroutine, the way the
// pulsar client calls the pool's callbacks from its event loop.
type ackSender struct{ q chan func() }

func newAckSender(b *testing.B) *ackSender {
	s := &ackSender{q: make(chan func(), 4096)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range s.q {
			f()
		}
	}()
	b.Cleanup(func() { close(s.q); <-done })
	return s
}

var benchSeq atomic.Int64

func (s *ackSender) SendAsync(_ context.Context, _ *produce.Message, done func(produce.Receipt, error)) {
	id := benchSeq.Add(1)
	s.q <- func() {
		done(produce.Receipt{MessageID: "7:" + strconv.FormatInt(id, 10) + ":-1:0", Cluster: "primary", Status: produce.StatusPersisted}, nil)
	}
}

// BenchmarkProduceStep is the produce path without HTTP and without a
// broker: Server.produce of one 1 KiB message, from 64 goroutines, with a
// sender that acknowledges at once from one goroutine. keyed has a fresh
// idempotency key per message against a real redis-server; unkeyed none.
// cpu-us/op is this process's CPU (user and system) per message,
// redis-cpu-us/op the redis-server's: keyed minus unkeyed is what the
// idempotency check costs. cmds/pipeline is how many commands shared a
// round trip.
//
//	go test ./proxy -run '^$' -bench ProduceStep -benchtime 3s -count 3
func BenchmarkProduceStep(b *testing.B) {
	srv := testredis.Start(b)
	rdb := srv.Client()
	b.Cleanup(func() { _ = rdb.Close() })
	var pipelines, cmds atomic.Int64
	rdb.AddHook(countHook{pipelines: &pipelines, cmds: &cmds})
	s, err := New(Options{Sender: newAckSender(b), DevMode: true,
		Idempotency: NewRedisIdempotency(rdb, time.Hour, 3*time.Second, 2*time.Second)})
	if err != nil {
		b.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 1024)
	for _, keyed := range []bool{false, true} {
		name := "unkeyed"
		if keyed {
			name = "keyed"
		}
		b.Run(name, func(b *testing.B) {
			var n atomic.Int64
			prefix := fmt.Sprintf("%s-%d-", name, time.Now().UnixNano())
			b.SetParallelism(32) // 64 goroutines on 2 CPUs
			pipelines.Store(0)
			cmds.Store(0)
			cpu0, rcpu0 := processCPU(), srv.CPU()
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m := &produce.Message{Topic: "persistent://bench/t/t", Payload: payload}
					if keyed {
						m.IdempotencyKey = prefix + strconv.FormatInt(n.Add(1), 10)
					}
					res, err := s.produce(context.Background(), "dev", "127.0.0.1", []*produce.Message{m}, time.Now())
					if err != nil || len(res) != 1 || res[0].Status != produce.StatusPersisted {
						b.Errorf("produce: %v %+v", err, res)
						return
					}
				}
			})
			b.StopTimer()
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
			if n := pipelines.Load(); n > 0 {
				b.ReportMetric(float64(cmds.Load())/float64(n), "cmds/pipeline")
			}
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
			b.ReportMetric(float64((srv.CPU()-rcpu0).Microseconds())/float64(b.N), "redis-cpu-us/op")
		})
	}
}

// processCPU is the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
