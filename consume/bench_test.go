package consume

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/tagfilter"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// benchTopicSize is how many messages each throughput benchmark consumes.
const benchTopicSize = 100000

// selectivity: every 100th message carries PAY_HIT at 1%; every message at 100%.
func benchMessages(n int, everyNth int) []testMsg {
	msgs := make([]testMsg, n)
	for i := range msgs {
		tags := []string{fmt.Sprintf("PAY_%d", 2000+i%97)}
		if i%everyNth == 0 {
			tags = append(tags, "PAY_HIT")
		}
		m := newMsg(tags...)
		m.payload = bytes.Repeat([]byte("x"), 100)
		msgs[i] = m
	}
	return msgs
}

// BenchmarkConsumeNative is the baseline: a pulsar-client-go Shared
// consumer on the same broker that receives every message, filters with
// the same compiled expression on the client (the only way natively) and
// acknowledges each. msgs/s counts matching messages handed to the
// application; topic-msgs/s every message read.
func BenchmarkConsumeNative(b *testing.B) {
	for _, sel := range []struct {
		name string
		nth  int
	}{{"selectivity=1%", 100}, {"selectivity=100%", 1}} {
		b.Run(sel.name, func(b *testing.B) {
			e := newEnv(b)
			ref := newRef("native")
			msgs := benchMessages(benchTopicSize, sel.nth)
			f := tagfilter.MustCompile("PAY_HIT")
			c := newClient(b, e.broker)
			cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: ref.TopicName(), SubscriptionName: ref.Subscription,
				Type: pulsar.Shared, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
				EnableBatchIndexAcknowledgment: true})
			require.NoError(b, err)
			defer cons.Close()
			produce(b, e.client, ref.TopicName(), msgs)
			want := 0
			for _, m := range msgs {
				if f.Match(m.tags) {
					want++
				}
			}
			var matched int
			var took, selfCPU time.Duration
			for b.Loop() {
				s0 := selfCPUTime()
				start := time.Now()
				matched = 0
				for read := 0; read < len(msgs); read++ {
					m, err := cons.Receive(context.Background())
					require.NoError(b, err)
					if f.Match(wire.ParseTags(m.Properties()[wire.PropTags])) {
						matched++
					}
					_ = cons.Ack(m)
				}
				took = time.Since(start)
				selfCPU = selfCPUTime() - s0
			}
			require.Equal(b, want, matched)
			b.ReportMetric(float64(matched)/took.Seconds(), "msgs/s")
			b.ReportMetric(float64(len(msgs))/took.Seconds(), "topic-msgs/s")
			b.ReportMetric(float64(selfCPU.Microseconds())/float64(matched), "proc-cpu-us/msg")
		})
	}
}

// BenchmarkConsumeHTTP is the same over HTTP: receive (max 1000) and ack
// through real HTTP against one sidecar, with the filter on the server,
// from 4 concurrent pollers that decode what they need to ack (the ackIds).
// Redis runs as its own process on the same two cores.
func BenchmarkConsumeHTTP(b *testing.B) {
	for _, sel := range []struct {
		name string
		nth  int
	}{{"selectivity=1%", 100}, {"selectivity=100%", 1}} {
		b.Run(sel.name, func(b *testing.B) {
			e := newEnv(b)
			n := e.node(func(o *Options) {
				o.Consumers.ReceiverQueueSize = 1000
				o.Consumers.MaxReady = 4000
				o.Consumers.MaxHeld = 20000
				o.Recorder = discard{} // production records into the tracer pipeline (~80 ns, no I/O)
			})
			ref := newRef("http")
			n.put(ref, SubscriptionSpec{TagFilter: "PAY_HIT", InitialPosition: PositionEarliest})
			msgs := benchMessages(benchTopicSize, sel.nth)
			produce(b, e.client, ref.TopicName(), msgs)
			want := (len(msgs) + sel.nth - 1) / sel.nth
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			defer client.CloseIdleConnections()
			post := func(path string, body any, out any) {
				raw, _ := json.Marshal(body)
				req, _ := http.NewRequest(http.MethodPost, n.base+subPath(ref)+path, bytes.NewReader(raw))
				req.Header.Set(testApp, "bench")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("%s: %d", path, resp.StatusCode)
					return
				}
				if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
					b.Error(err)
				}
			}
			var got atomic.Int64
			var took time.Duration
			var redisCPU, selfCPU time.Duration
			for b.Loop() {
				r0, s0 := redisCPUTime(b, e), selfCPUTime()
				start := time.Now()
				var wg sync.WaitGroup
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for got.Load() < int64(want) && !b.Failed() {
							// The client decodes what it needs to ack.
							var r struct{ Messages []struct{ AckID string } }
							post("/receive", ReceiveRequest{Max: 1000, WaitMs: 100}, &r)
							if len(r.Messages) == 0 {
								continue
							}
							ids := make([]string, len(r.Messages))
							for i, m := range r.Messages {
								ids[i] = m.AckID
							}
							var a AckResponse
							post("/ack", AckRequest{AckIDs: ids}, &a)
							got.Add(int64(a.Acked))
						}
					}()
				}
				wg.Wait()
				took = time.Since(start)
				redisCPU, selfCPU = redisCPUTime(b, e)-r0, selfCPUTime()-s0
			}
			require.EqualValues(b, want, got.Load())
			if os.Getenv("PSC_BENCH_REDIS_STATS") != "" {
				b.Log(e.rdb.Info(context.Background(), "commandstats").Val())
			}
			b.ReportMetric(float64(want)/took.Seconds(), "msgs/s")
			b.ReportMetric(float64(len(msgs))/took.Seconds(), "topic-msgs/s")
			// CPU per matching message: redis-server's (INFO cpu) and this
			// process's (sidecar, HTTP client, minipulsar, Pulsar client).
			b.ReportMetric(float64(redisCPU.Microseconds())/float64(want), "redis-cpu-us/msg")
			b.ReportMetric(float64(selfCPU.Microseconds())/float64(want), "proc-cpu-us/msg")
		})
	}
}

// redisCPUTime is redis-server's CPU time so far (user and system).
func redisCPUTime(b *testing.B, e *env) time.Duration {
	info, err := e.rdb.Info(context.Background(), "cpu").Result()
	require.NoError(b, err)
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(b, err)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// selfCPUTime is this process's CPU time so far.
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discard is a Recorder that, unlike tracer.Nop, makes the engine build
// every event.
type discard struct{}

func (discard) Record(tracer.Event) {}

func BenchmarkAckIDEncode(b *testing.B) {
	s := testSigner(b)
	a := sampleAckIDs()[0]
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Encode(&a)
	}
}

func BenchmarkAckIDDecode(b *testing.B) {
	s := testSigner(b)
	a := sampleAckIDs()[0]
	tok := s.Encode(&a)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Decode(tok); err != nil {
			b.Fatal(err)
		}
	}
}
