package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// BenchmarkProduce compares, in one run against one minipulsar:
//
//   - sidecar: one-message raw-form HTTP requests (1 KiB payload) over
//     keep-alive connections, one per worker, answered after the broker's ack;
//   - sidecar-idem: the same with a fresh Idempotency-Key per request (two
//     Lua calls on a real redis-server);
//   - direct-send: workers calling producer.Send on one producer with the
//     sidecar pool's batching settings (the baseline);
//   - nethttp: a bare net/http handler that reads the body and answers a
//     small JSON, the ceiling of HTTP on this machine;
//   - nethttp-goclient: the same handler driven by Go's net/http client,
//     the load generator used before loadgen_test.go, to show what the
//     generator itself costs on a shared machine.
//
// The HTTP paths use the raw-TCP load generator (loadgen_test.go); req/s,
// p50 and p99 are reported per sub-benchmark.
//
//	go test ./internal/app -run '^$' -bench 'Produce/.*/conc=64' -benchtime 3s -count 3
func BenchmarkProduce(b *testing.B) {
	broker := minipulsar.RunT(b)
	rds := testredis.Start(b)
	cfg := testConfig(b, broker, rds)
	a, err := New(cfg, WithLogger(testLogger(b)), WithRecorder(tracer.Nop{}))
	require.NoError(b, err)
	require.NoError(b, a.Start(context.Background()))
	b.Cleanup(func() { _ = a.Stop(context.Background()) })
	payload := bytes.Repeat([]byte("x"), 1024)

	client := nativeClient(b, broker.ServiceURL())
	producer, err := client.CreateProducer(pulsar.ProducerOptions{
		Topic:                   "persistent://bench/direct/t",
		BatchingMaxPublishDelay: cfg.Producer.BatchingMaxPublishDelay,
		BatchingMaxMessages:     uint(cfg.Producer.BatchingMaxMessages),
		BatchingMaxSize:         uint(cfg.Producer.BatchingMaxBytes),
		MaxPendingMessages:      cfg.Producer.MaxPendingMessages,
	})
	require.NoError(b, err)
	b.Cleanup(producer.Close)

	bare := bareHTTP(b)
	persisted := func(body []byte) error {
		if !bytes.Contains(body, []byte(`"status":"persisted"`)) {
			return fmt.Errorf("answer without status persisted: %s", body)
		}
		return nil
	}
	produce := func(topic string, seqHeader string) *rawRequest {
		return &rawRequest{Method: http.MethodPost, Path: "/v1/topics/bench/" + topic + "/t/messages",
			Headers: []string{"Content-Type: application/octet-stream"}, Body: payload, SeqHeader: seqHeader, Check: persisted}
	}
	for _, conc := range []int{1, 32, 64} {
		b.Run(fmt.Sprintf("sidecar/conc=%d", conc), func(b *testing.B) {
			rawHTTPLoad(b, conc, a.Addr(), produce("sidecar", ""))
		})
		b.Run(fmt.Sprintf("sidecar-idem/conc=%d", conc), func(b *testing.B) {
			rawHTTPLoad(b, conc, a.Addr(), produce("idem", proxy.HeaderIdempotencyKey))
		})
		b.Run(fmt.Sprintf("direct-send/conc=%d", conc), func(b *testing.B) {
			runWorkers(b, conc, func(int) (func() error, func(), error) {
				return func() error {
					_, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: payload})
					return err
				}, nil, nil
			})
		})
		b.Run(fmt.Sprintf("nethttp/conc=%d", conc), func(b *testing.B) {
			rawHTTPLoad(b, conc, strings.TrimSuffix(strings.TrimPrefix(bare, "http://"), "/"), &rawRequest{Method: http.MethodPost, Path: "/",
				Headers: []string{"Content-Type: application/octet-stream"}, Body: payload, Check: persisted})
		})
		b.Run(fmt.Sprintf("nethttp-goclient/conc=%d", conc), func(b *testing.B) {
			httpLoad(b, conc, bare, payload, nil)
		})
	}
}

// httpLoad posts payload to url from conc keep-alive connections.
func httpLoad(b *testing.B, conc int, url string, payload []byte, edit func(*http.Request)) {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	load(b, conc, func() error {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		if edit != nil {
			edit(req)
		}
		res, err := c.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
}

// load runs op from conc workers, one call per b.Loop iteration, and
// reports throughput and latency percentiles.
func load(b *testing.B, conc int, op func() error) {
	jobs := make(chan struct{})
	lat := make([][]time.Duration, conc)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for range jobs {
				t := time.Now()
				if err := op(); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		})
	}
	start := time.Now()
	for b.Loop() {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed, first: %v", n, b.N, firstErr.Load())
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// bareHTTP serves the smallest useful produce-like handler: read the body,
// answer a small JSON.
func bareHTTP(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"results":[{"uid":"01a1fe6b-9473-7e22-9d4f-3d7c230592fe","messageId":"1:0:0:0","status":"persisted","cluster":"primary"}]}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// BenchmarkProduceTracing compares, in one run against one broker and
// Redis, the sidecar with lifecycle tracing off (a Nop recorder) and on
// (the real pipeline into the SQLite trace store, every request recording
// accepted and persisted events):
//
//	go test ./internal/app -run '^$' -bench ProduceTracing -benchtime 3s -count 3
//
// The target is tracing-on at least 0.95x tracing-off.
func BenchmarkProduceTracing(b *testing.B) {
	broker := minipulsar.RunT(b)
	rds := testredis.Start(b)
	payload := bytes.Repeat([]byte("x"), 1024)
	run := func(name string, opts ...Option) {
		cfg := testConfig(b, broker, rds)
		a, err := New(cfg, append([]Option{WithLogger(testLogger(b))}, opts...)...)
		require.NoError(b, err)
		require.NoError(b, a.Start(context.Background()))
		defer func() { _ = a.Stop(context.Background()) }()
		b.Run(name+"/conc=32", func(b *testing.B) {
			httpLoad(b, 32, "http://"+a.Addr()+"/v1/topics/bench/trace/"+name+"/messages", payload, nil)
		})
		if a.pipeline != nil {
			st := a.pipeline.Stats()
			b.Logf("%s: pipeline stats %+v", name, st)
		}
	}
	run("tracing-off", WithRecorder(tracer.Nop{}))
	run("tracing-on")
}
