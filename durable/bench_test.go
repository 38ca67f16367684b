package durable

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// BenchmarkSend measures messages made durable per second through the
// Sender, from 1, 16 and 64 concurrent senders (each waits for its answer,
// as an HTTP request does), 256-byte payloads, in three modes:
//
//   - healthy: the primary (an in-memory minipulsar) takes everything;
//   - failover: the primary is down and its breaker open, the DR cluster
//     takes everything;
//   - spooling: both clusters are down and their breakers open, every
//     message is appended to the spool (real fsync, group commit) on the
//     test's temporary directory.
func BenchmarkSend(b *testing.B) {
	modes := []struct {
		name           string
		primary, drUp  bool
		want           produce.Status
		spoolWithFsync bool
	}{
		{"healthy", true, true, produce.StatusPersisted, false},
		{"failover", false, true, produce.StatusFailover, false},
		{"spooling", false, false, produce.StatusSpooled, true},
	}
	payload := []byte(strings.Repeat("x", 256))
	for _, mode := range modes {
		for _, senders := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/senders=%d", mode.name, senders), func(b *testing.B) {
				broker := func(up bool) *minipulsar.Server {
					if up {
						return newBroker(b, minipulsar.Options{})
					}
					return deadBroker(b)
				}
				pc, dc := connect(b, broker(mode.primary), "primary"), connect(b, broker(mode.drUp), "dr")
				opts := testOptions(b, b.TempDir(), pc, dc)
				opts.Logger, opts.Registerer, opts.Recorder = quiet, nil, nil
				opts.IdleProbeInterval = -1
				s := start(b, opts)
				sendOne := func(i int) produce.Receipt {
					m := newMessage(i, testTopic)
					m.Payload = payload
					rc, err := send(b, s, m, 10*time.Second)
					if err != nil {
						b.Fatal(err)
					}
					return rc
				}
				// Warm up: producers created, breakers of dead clusters open.
				for i := 0; sendOne(i).Status != mode.want; i++ {
					if i == 200 {
						b.Fatalf("still no %s answer after %d messages", mode.want, i)
					}
				}

				work := make(chan int)
				var wg sync.WaitGroup
				for range senders {
					wg.Go(func() {
						for i := range work {
							if rc := sendOne(i); rc.Status != mode.want {
								b.Errorf("status %s, want %s", rc.Status, mode.want)
							}
						}
					})
				}
				begin := time.Now()
				i := 0
				for b.Loop() {
					work <- i
					i++
				}
				close(work)
				wg.Wait()
				elapsed := time.Since(begin)
				b.ReportMetric(float64(i)/elapsed.Seconds(), "msgs/s")
				if mode.spoolWithFsync {
					st := s.Health().Spool
					b.ReportMetric(float64(st.Fsyncs)/elapsed.Seconds(), "fsyncs/s")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if err := s.Close(ctx); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
