package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer/esfake"
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
//	go test ./app -run '^$' -bench 'Produce/.*/conc=64' -benchtime 3s -count 3
func BenchmarkProduce(b *testing.B) {
	broker, rds, cfg, a := startProduceBench(b, minipulsar.Options{})
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
	produce := func(topic string, seqHeader string) *rawRequest { return produceRequest(topic, seqHeader, payload) }
	for _, conc := range []int{1, 32, 64} {
		// The last (longest) run of each, for the side-by-side line.
		var unkeyed, keyed loadStats
		var unkeyedRedis, keyedRedis time.Duration
		b.Run(fmt.Sprintf("sidecar/conc=%d", conc), func(b *testing.B) {
			r0 := rds.CPU()
			unkeyed = rawHTTPLoad(b, conc, a.Addr(), produce("sidecar", ""))
			unkeyedRedis = (rds.CPU() - r0) / time.Duration(b.N)
			b.ReportMetric(float64(unkeyedRedis.Nanoseconds())/1000, "redis-cpu-us/op")
		})
		b.Run(fmt.Sprintf("sidecar-idem/conc=%d", conc), func(b *testing.B) {
			r0 := rds.CPU()
			keyed = rawHTTPLoad(b, conc, a.Addr(), produce("idem", proxy.HeaderIdempotencyKey))
			keyedRedis = (rds.CPU() - r0) / time.Duration(b.N)
			b.ReportMetric(float64(keyedRedis.Nanoseconds())/1000, "redis-cpu-us/op")
			if unkeyed.reqPerSec > 0 && b.N >= 1000 {
				// Issue 12's target, side by side: keyed >= 0.7x unkeyed, p99 <= 10 ms
				// (against the last run of sidecar/conc=N just before).
				b.Logf("keyed/unkeyed %.2fx | unkeyed %.0f req/s p50 %.2f p99 %.2f ms cpu %.1f+%.1f us/req | keyed %.0f req/s p50 %.2f p99 %.2f ms cpu %.1f+%.1f us/req (process + redis-server)",
					keyed.reqPerSec/unkeyed.reqPerSec,
					unkeyed.reqPerSec, ms(unkeyed.p50), ms(unkeyed.p99), us(unkeyed.cpuPerOp), us(unkeyedRedis),
					keyed.reqPerSec, ms(keyed.p50), ms(keyed.p99), us(keyed.cpuPerOp), us(keyedRedis))
			}
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
				Headers: []string{"Content-Type: application/octet-stream"}, Body: payload, Check: persistedAnswer})
		})
		b.Run(fmt.Sprintf("nethttp-goclient/conc=%d", conc), func(b *testing.B) {
			httpLoad(b, conc, bare, payload, nil)
		})
	}
}

// startProduceBench starts what the produce benchmarks load: a sidecar
// (tracing off) on a minipulsar with brokerOpts and a real redis-server.
func startProduceBench(b *testing.B, brokerOpts minipulsar.Options) (*minipulsar.Server, *testredis.Server, config.Config, *App) {
	broker := minipulsar.RunOptionsT(b, brokerOpts)
	rds := testredis.Start(b)
	cfg := testConfig(b, broker, rds)
	a, err := New(cfg, WithLogger(testLogger(b)), WithRecorder(tracer.Nop{}))
	require.NoError(b, err)
	require.NoError(b, a.Start(context.Background()))
	b.Cleanup(func() { _ = a.Stop(context.Background()) })
	return broker, rds, cfg, a
}

// produceRequest is a raw-form produce of payload to bench/<topic>/t,
// a new value of seqHeader (when set) on every request, answered
// "persisted".
func produceRequest(topic, seqHeader string, payload []byte) *rawRequest {
	return &rawRequest{Method: http.MethodPost, Path: "/v1/topics/bench/" + topic + "/t/messages",
		Headers: []string{"Content-Type: application/octet-stream"}, Body: payload, SeqHeader: seqHeader,
		Check: persistedAnswer}
}

// persistedAnswer checks that an answer says "persisted".
func persistedAnswer(body []byte) error {
	if !bytes.Contains(body, []byte(`"status":"persisted"`)) {
		return fmt.Errorf("answer without status persisted: %s", body)
	}
	return nil
}

// BenchmarkProduceKeyedRounds measures issue 12's side-by-side target
// (keyed produce at least 0.7x the throughput of unkeyed, 64 connections,
// 1 KiB payloads, p99 at most 10 ms) in alternating rounds on one sidecar:
// unkeyed then keyed, the order swapped every round. On the shared 2-core
// VM the throughput of one configuration drifted by up to 30% between
// runs a minute apart, more than the difference being measured; the ratio
// of two loads seconds apart cancels most of that drift, and the
// in-memory broker's growing heap weighs on both sides alike (in
// BenchmarkProduce the keyed run always comes second). It logs each
// round's ratio, their median, and p50/p99 over all rounds of each side.
//
//	go test ./app -run '^$' -bench '^BenchmarkProduceKeyedRounds$' -benchtime 20000x   # PSC_BENCH_ROUNDS, default 10
func BenchmarkProduceKeyedRounds(b *testing.B) {
	_, rds, _, a := startProduceBench(b, minipulsar.Options{})
	payload := bytes.Repeat([]byte("x"), 1024)
	rounds := 10
	if v, err := strconv.Atoi(os.Getenv("PSC_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	type side struct {
		name     string
		req      *rawRequest
		hist     latencyHist
		rate     []float64     // req/s, per round
		cpu      time.Duration // process, summed over rounds
		redisCPU time.Duration
		n        int
	}
	unkeyed := &side{name: "unkeyed", req: produceRequest("rounds-unkeyed", "", payload)}
	keyed := &side{name: "keyed", req: produceRequest("rounds-keyed", proxy.HeaderIdempotencyKey, payload)}
	for round := range rounds {
		order := []*side{unkeyed, keyed}
		if round%2 == 1 {
			order = []*side{keyed, unkeyed}
		}
		for _, sd := range order {
			b.Run(fmt.Sprintf("%s/round=%d", sd.name, round), func(b *testing.B) {
				r0 := rds.CPU()
				st := rawHTTPLoad(b, 64, a.Addr(), sd.req)
				if b.N < 1000 {
					return // the testing package's first call, b.N = 1
				}
				sd.hist.merge(st.hist)
				sd.rate = append(sd.rate, st.reqPerSec)
				sd.cpu += st.cpuPerOp * time.Duration(b.N)
				sd.redisCPU += rds.CPU() - r0
				sd.n += b.N
			})
		}
	}
	if len(keyed.rate) != rounds || len(unkeyed.rate) != rounds {
		return // a filtered run (-bench naming one side)
	}
	ratios := make([]float64, rounds)
	for i := range ratios {
		ratios[i] = keyed.rate[i] / unkeyed.rate[i]
	}
	sorted := slices.Sorted(slices.Values(ratios))
	median := (sorted[(rounds-1)/2] + sorted[rounds/2]) / 2
	line := func(sd *side) string {
		rates := slices.Sorted(slices.Values(sd.rate))
		return fmt.Sprintf("%s median %.0f req/s, p50 %.2f p99 %.2f ms over %d requests, cpu %.1f+%.1f us/req",
			sd.name, (rates[(rounds-1)/2]+rates[rounds/2])/2, ms(sd.hist.quantile(0.50)), ms(sd.hist.quantile(0.99)), sd.n,
			us(sd.cpu/time.Duration(sd.n)), us(sd.redisCPU/time.Duration(sd.n)))
	}
	// A sub-benchmark of its own, so that the line is printed without -v.
	logged := false
	b.Run("summary", func(b *testing.B) {
		b.ReportMetric(median, "keyed/unkeyed")
		b.ReportMetric(ms(keyed.hist.quantile(0.99)), "keyed-p99-ms")
		if !logged {
			logged = true
			b.Logf("keyed/unkeyed per round %.2f; median %.2fx (min %.2f, max %.2f) | %s | %s (process + redis-server)",
				ratios, median, sorted[0], sorted[rounds-1], line(unkeyed), line(keyed))
		}
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

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
// Redis, the sidecar with lifecycle tracing off (a Nop recorder) and on,
// with the raw-TCP load generator (loadgen_test.go) from 32 keep-alive
// connections, one-message raw requests of 1 KiB, two events per message
// (accepted, persisted):
//
//   - off and off2: tracing off, two identical apps (below);
//   - sqlite: the pipeline into the SQLite store with the default ingest
//     budget (trace.ingestBudget 0.005: beyond 0.5% of a CPU while produce
//     is busy, events wait in the outbox until it is quiet);
//   - sqlite-2pct: the same with the default before 2026-11-21's last
//     change (0.02);
//   - sqlite-nodefer: the same with the budget off (every batch written at
//     once: what tracing costs when the store keeps up in real time);
//   - es: the pipeline into the Elasticsearch store, default budget, against
//     esfake, which runs in this process: its CPU (decoding bulk bodies,
//     indexing in maps) is taken from the sidecar here, not on a real
//     deployment where Elasticsearch runs elsewhere;
//   - es-down: the Elasticsearch store at an address nothing listens on for
//     the whole run: every event goes to the outbox, none may be lost.
//
// The broker is cmd/minipulsar in a child process on loopback
// (startChildBroker): minipulsar keeps every message in memory, and in this
// process its heap grew by hundreds of MB over a run, so later rounds paid
// more for garbage collection and fresh pages than earlier ones, tracing on
// and off alike. cpu-us/op includes the child's CPU (broker-cpu-us/op on
// its own). PSC_BENCH_BROKER=inproc runs the broker in this process as
// before, to compare.
//
// The seven apps run side by side on one broker (all start, whatever
// -test.bench selects); the variants take turns,
// PSC_BENCH_ROUNDS times (3), so that each traced round has tracing-off
// rounds just before and after it on a machine whose load drifts
// (repeated names get #01, #02 suffixes). The order rotates every round,
// and off2, a second tracing-off app, measures the method: off2/off is
// what two identical apps give. A warm-up round (<variant>/warmup) comes
// first and is not counted.
//
// After each load the clock is stopped and the benchmark waits until every
// event is in the store, reporting that time as catchup-s, and checks that
// the store holds exactly two events per message sent to that app, none
// dropped, rejected or lost. deferred-% is the share of the round's events
// that waited in the outbox; ingest-cpu-% the store's CPU during the load,
// in % of one core. A traced round of 10 s or more logs per-second samples
// (req/s, outbox size, lag, throttled, limit reached, ingest CPU) to show
// what a long run does once a deferral limit (trace.deferMaxBytes 256 MiB,
// trace.deferMaxAge 5m) is reached.
//
//	go test ./app -run '^$' -bench 'ProduceTracing/^(off|sqlite)$/' -benchtime 5s
//	go test ./app -run '^$' -bench ProduceTracing -benchtime 5s
//	PSC_BENCH_ROUNDS=1 go test ./app -run '^$' -bench 'ProduceTracing/(off|sqlite)/' -benchtime 60s -v
//
// The target is tracing-on at least 0.95x tracing-off.
func BenchmarkProduceTracing(b *testing.B) {
	var broker *minipulsar.Server
	var child *childBroker
	if os.Getenv("PSC_BENCH_BROKER") == "inproc" {
		broker = minipulsar.RunT(b)
	} else {
		child = startChildBroker(b)
	}
	rds := testredis.Start(b)
	fake := esfake.RunT(b)
	payload := bytes.Repeat([]byte("x"), 1024)
	type variant struct {
		name string
		a    *App
		sent int64 // requests sent to this app over every round
	}
	start := func(name string, edit func(*config.Config), opts ...Option) *variant {
		cfg := testConfig(b, broker, rds)
		if child != nil {
			cfg.Pulsar.URL, cfg.Pulsar.AdminURL = child.serviceURL, child.adminURL
		}
		if edit != nil {
			edit(&cfg)
		}
		a, err := New(cfg, append([]Option{WithLogger(testLogger(b))}, opts...)...)
		require.NoError(b, err)
		require.NoError(b, a.Start(context.Background()))
		b.Cleanup(func() { _ = a.Stop(context.Background()) })
		return &variant{name: name, a: a}
	}
	variants := []*variant{
		start("off", nil, WithRecorder(tracer.Nop{})),
		// A second tracing-off app: off2 against off is what the method
		// itself gives for two identical apps (order, drift, noise).
		start("off2", nil, WithRecorder(tracer.Nop{})),
		start("sqlite", nil),
		start("sqlite-nodefer", func(c *config.Config) { c.Trace.IngestBudget = 0 }),
		// The default budget before 2026-11-21's last change, for a side
		// by side comparison in one run.
		start("sqlite-2pct", func(c *config.Config) { c.Trace.IngestBudget = 0.02 }),
		start("es", func(c *config.Config) {
			c.Trace.Store = "elasticsearch"
			c.Trace.Elasticsearch.Addresses = fake.URL()
		}),
		// Elasticsearch down for the whole run (nothing listens at its
		// address): every event goes to the outbox; none may be lost.
		start("es-down", func(c *config.Config) {
			c.Trace.Store = "elasticsearch"
			c.Trace.Elasticsearch.Addresses = "http://" + unusedAddr(b)
		}),
	}
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("PSC_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	run := func(v *variant, name string) {
		a := v.a
		req := &rawRequest{Method: http.MethodPost, Path: "/v1/topics/bench/trace/" + v.name + "/messages",
			Headers: []string{"Content-Type: application/octet-stream"}, Body: payload, Check: persistedAnswer}
		b.Run(v.name+"/"+name, func(b *testing.B) {
			var st0 tracer.Stats
			if a.pipeline != nil {
				st0 = a.pipeline.Stats()
			}
			stopSampler := sampleTrace(b, a)
			t0 := time.Now()
			rawHTTPLoad(b, 32, a.Addr(), req)
			loadTime := time.Since(t0)
			b.StopTimer()
			stopSampler()
			v.sent += int64(b.N)
			if a.pipeline == nil {
				return
			}
			stLoad := a.pipeline.Stats()
			if v.name == "es-down" {
				st := waitTraceSpilled(b, a, 2*uint64(v.sent))
				require.Zero(b, st.Written+st.Replayed, "the store is down: %+v", st)
				b.ReportMetric(float64(st.OutboxBytes)/float64(st.Spilled), "outbox-B/event")
				return
			}
			caughtUp := waitTraceStored(b, a, st0.Recorded+uint64(2*b.N))
			st := a.pipeline.Stats()
			require.Zero(b, st.Dropped(), "%+v", st)
			require.Zero(b, st.Rejected, "%+v", st)
			require.Zero(b, st.SpillFailed, "%+v", st)
			require.EqualValues(b, 2*v.sent, st.Recorded, "two events per message: %+v", st)
			require.EqualValues(b, 2*v.sent, traceCount(b, a, fake), "events in the store")
			events := float64(2 * b.N)
			b.ReportMetric(caughtUp.Seconds(), "catchup-s")
			b.ReportMetric(100*float64(stLoad.Deferred-st0.Deferred)/events, "deferred-%")
			b.ReportMetric(100*(stLoad.IngestCPU-st0.IngestCPU).Seconds()/loadTime.Seconds(), "ingest-cpu-%")
			b.ReportMetric(float64(st.DeferLimitHits-st0.DeferLimitHits), "limit-hits")
		})
	}
	// A warm-up round, reported as <variant>/warmup and left out of the
	// tables: in every process the first load on the fresh child broker
	// cost it about 10 us per message and later ones 12-14, which favoured
	// whichever variant came first; warming the broker with a native
	// producer (200k messages, batched or not) did not remove it.
	for _, v := range variants {
		run(v, "warmup")
	}
	for round := range rounds {
		// The order rotates every round, so that no variant is always the
		// one that meets the broker first or last in a round.
		order := slices.Concat(variants[round%len(variants):], variants[:round%len(variants)])
		for _, v := range order {
			run(v, "conc=32")
		}
	}
}

// waitTraceStored waits until the pipeline has recorded want events and
// every one of them is settled (stored, rejected or lost, which the caller
// checks) with nothing left in the queue or the outbox, and returns how
// long that took.
func waitTraceStored(b *testing.B, a *App, want uint64) time.Duration {
	t0 := time.Now()
	deadline := t0.Add(5 * time.Minute)
	for {
		st := a.pipeline.Stats()
		if st.Recorded >= want && st.QueueLen == 0 && st.OverflowLen == 0 && st.OutboxBytes == 0 &&
			st.Written+st.Replayed+st.Rejected+st.SpillFailed == st.Recorded {
			return time.Since(t0)
		}
		if time.Now().After(deadline) {
			b.Fatalf("trace store did not catch up in 5 minutes: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitTraceSpilled waits until want events are recorded and every one of
// them is in the outbox (the store being down), with none dropped or lost,
// and returns the pipeline's stats.
func waitTraceSpilled(b *testing.B, a *App, want uint64) tracer.Stats {
	deadline := time.Now().Add(time.Minute)
	for {
		st := a.pipeline.Stats()
		require.Zero(b, st.Dropped(), "%+v", st)
		require.Zero(b, st.SpillFailed, "%+v", st)
		require.LessOrEqual(b, st.Recorded, want, "%+v", st)
		if st.Recorded == want && st.QueueLen == 0 && st.OverflowLen == 0 && st.Spilled == want {
			return st
		}
		if time.Now().After(deadline) {
			b.Fatalf("events did not reach the outbox in a minute: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// traceCount is the number of events in the app's trace store.
func traceCount(b *testing.B, a *App, fake *esfake.Server) int64 {
	switch st := a.traceStore.(type) {
	case *tracer.SQLite:
		n, err := st.Count(context.Background())
		require.NoError(b, err)
		return n
	case *tracer.Elastic:
		return int64(fake.Count())
	}
	b.Fatalf("unknown trace store %T", a.traceStore)
	return 0
}

// sampleTrace logs, once a second while a load runs for at least 10 s, the
// produce rate (psc_produce_messages_total) and, with tracing on, the
// pipeline's outbox, lag and state; the returned function stops it.
func sampleTrace(b *testing.B, a *App) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	var lines []string
	produced := func() float64 {
		mfs, err := a.reg.Gather()
		if err != nil {
			return 0
		}
		var n float64
		for _, mf := range mfs {
			if mf.GetName() == "psc_produce_messages_total" {
				for _, m := range mf.GetMetric() {
					n += m.GetCounter().GetValue()
				}
			}
		}
		return n
	}
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var prev tracer.Stats
		if a.pipeline != nil {
			prev = a.pipeline.Stats()
		}
		prevN := produced()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			n := produced()
			line := fmt.Sprintf("t=%3ds req/s=%6.0f", i, n-prevN)
			prevN = n
			if a.pipeline != nil {
				st := a.pipeline.Stats()
				line += fmt.Sprintf(" outbox=%4dMiB lag=%5.1fs throttled=%-5v limit=%-5v ingest-cpu=%4.0f%%",
					st.OutboxBytes>>20, st.Lag.Seconds(), st.Throttled, st.DeferLimit, 100*(st.IngestCPU-prev.IngestCPU).Seconds())
				prev = st
			}
			lines = append(lines, line)
		}
	}()
	return func() {
		close(stop)
		<-done
		if len(lines) >= 10 {
			b.Logf("per-second samples:\n%s", strings.Join(lines, "\n"))
		}
	}
}
