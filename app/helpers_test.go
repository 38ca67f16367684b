package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// harness is one sidecar running in-process against a minipulsar and a
// real redis-server, with a native Pulsar client to check what it wrote.
type harness struct {
	t      testing.TB
	app    *App
	broker *minipulsar.Server
	redis  *testredis.Server
	base   string // http://127.0.0.1:port
	http   *http.Client
	client pulsar.Client
	rec    *recorder

	stoppedByTest bool // the test calls Stop and checks its result itself
}

// testConfig is the configuration of a test sidecar: random ports, the
// test's broker and Redis, a temporary data directory.
func testConfig(t testing.TB, broker *minipulsar.Server, rds *testredis.Server) config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Node = "test-node"
	cfg.Delay.Levels = "1s 2s" // two level forwarders per test app, not eighteen
	cfg.ShutdownTimeout = 10 * time.Second
	if broker != nil {
		cfg.Pulsar.URL = broker.ServiceURL()
		cfg.Pulsar.AdminURL = broker.AdminURL()
	}
	if rds != nil {
		cfg.Redis.Addr = rds.Addr()
	}
	return cfg
}

// testLogger logs warnings to the test's output until the test ends, and
// drops them after: pulsar-client-go v0.19 lets a closed producer's
// reconnect loop run (and log) until its backoff ends, and a write to a
// finished test's output panics.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(w.close)
	level := slog.LevelWarn
	if os.Getenv("PSC_TEST_LOG") == "debug" { // to see what a failing test's app did
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.w.Write(p)
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// start runs a sidecar for the test, its lifecycle events going to the
// harness's recorder; edit adjusts its configuration.
func start(t testing.TB, edit func(*config.Config)) *harness {
	t.Helper()
	return startOn(t, nil, edit)
}

// startOn is start on another Redis than one plain redis-server: topo
// starts it and points the configuration at it (redis_topology_test.go).
func startOn(t testing.TB, topo redisTopology, edit func(*config.Config)) *harness {
	t.Helper()
	rec := &recorder{}
	h := startAppOn(t, topo, edit, WithRecorder(rec))
	h.rec = rec
	return h
}

// redisTopology starts the Redis of a test sidecar and configures it; nil
// is one plain redis-server (harness.redis).
type redisTopology func(t testing.TB, cfg *config.Config)

// startApp runs a sidecar for the test with the given options (without
// WithRecorder, events go through the real trace pipeline and store).
func startApp(t testing.TB, edit func(*config.Config), opts ...Option) *harness {
	t.Helper()
	return startAppOn(t, nil, edit, opts...)
}

// startAppOn is startApp on the Redis topo starts (nil: a plain server).
func startAppOn(t testing.TB, topo redisTopology, edit func(*config.Config), opts ...Option) *harness {
	t.Helper()
	broker := minipulsar.RunT(t)
	var rds *testredis.Server
	if topo == nil {
		rds = testredis.Start(t)
	}
	cfg := testConfig(t, broker, rds)
	if topo != nil {
		topo(t, &cfg)
	}
	if edit != nil {
		edit(&cfg)
	}
	h := &harness{t: t, broker: broker, redis: rds}
	a, err := New(cfg, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err := a.Stop(ctx) // idempotent: a test that stopped the app itself checked the result
		if !h.stoppedByTest {
			require.NoError(t, err)
		}
	})
	h.app = a
	h.base = "http://" + a.Addr()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	h.http = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	h.client = nativeClient(t, broker.ServiceURL())
	return h
}

func nativeClient(t testing.TB, url string) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:               url,
		OperationTimeout:  10 * time.Second,
		Logger:            pulsarlog.NewLoggerWithSlog(slog.New(slog.DiscardHandler)),
		MetricsRegisterer: prometheus.NewRegistry(),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

var topicSeq atomic.Int64

// newTopic returns a fresh topic path "tenant/ns/topic" and its full name.
func newTopic(t testing.TB) (path, full string) {
	name := fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e6, topicSeq.Add(1))
	return "pay/settle/" + name, "persistent://pay/settle/" + name
}

// response is a decoded produce answer, 2xx or not.
type response struct {
	Status     int            `json:"-"`
	RetryAfter string         `json:"-"`
	Results    []proxy.Result `json:"results"`
	Error      *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Raw string `json:"-"`
}

func (r response) code() string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Code
}

// do sends a request to the sidecar and decodes the JSON answer.
func (h *harness) do(method, path string, header http.Header, body []byte) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, bytes.NewReader(body))
	require.NoError(h.t, err)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := h.http.Do(req)
	require.NoError(h.t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(h.t, err)
	out := response{Status: res.StatusCode, RetryAfter: res.Header.Get("Retry-After"), Raw: string(data)}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		require.NoError(h.t, json.Unmarshal(data, &out), "body %s", data)
	}
	return out
}

func jsonHeader(kv ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// produceJSON posts a JSON batch to topic path p.
func (h *harness) produceJSON(p string, body string, kv ...string) response {
	h.t.Helper()
	return h.do(http.MethodPost, "/v1/topics/"+p+"/messages", jsonHeader(kv...), []byte(body))
}

// register creates the HTTP subscription name on topic path p with the
// JSON body (PUT, answered 201) and returns its path.
func (h *harness) register(p, name, body string) string {
	h.t.Helper()
	sub := "/v1/topics/" + p + "/subscriptions/" + name
	reg := h.do(http.MethodPut, sub, jsonHeader(), []byte(body))
	require.Equal(h.t, http.StatusCreated, reg.Status, reg.Raw)
	return sub
}

// readAll reads every message on a topic from the start with a reader.
func (h *harness) readAll(full string) []pulsar.Message {
	h.t.Helper()
	r, err := h.client.CreateReader(pulsar.ReaderOptions{Topic: full, StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(h.t, err)
	defer r.Close()
	var out []pulsar.Message
	for r.HasNext() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := r.Next(ctx)
		cancel()
		require.NoError(h.t, err)
		out = append(out, m)
	}
	return out
}

// subscribe creates a Shared consumer that is closed when the test ends.
func (h *harness) subscribe(full string) pulsar.Consumer {
	h.t.Helper()
	c, err := h.client.Subscribe(pulsar.ConsumerOptions{Topic: full, SubscriptionName: "test", Type: pulsar.Shared,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	require.NoError(h.t, err)
	h.t.Cleanup(c.Close)
	return c
}

func receive(t testing.TB, c pulsar.Consumer) pulsar.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Receive(ctx)
	require.NoError(t, err)
	require.NoError(t, c.Ack(m))
	return m
}

// recorder keeps lifecycle events and calls hooks on each.
type recorder struct {
	mu     sync.Mutex
	events []tracer.Event
	hooks  []func(tracer.Event)
}

func (r *recorder) Record(ev tracer.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	hooks := r.hooks
	r.mu.Unlock()
	for _, f := range hooks {
		f(ev)
	}
}

func (r *recorder) onEvent(f func(tracer.Event)) {
	r.mu.Lock()
	r.hooks = append(r.hooks, f)
	r.mu.Unlock()
}

// types lists the event types recorded for uid, in order.
func (r *recorder) types(uid string) []tracer.Type {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []tracer.Type
	for _, ev := range r.events {
		if ev.UID == uid {
			out = append(out, ev.Type)
		}
	}
	return out
}
