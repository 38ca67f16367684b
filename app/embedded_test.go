package app

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// startEmbedded runs the sidecar in its default mode (no Pulsar, no
// Redis configured) on dataDir, the way `go run ./cmd/pulsar-sidecar`
// does, but on random ports.
func startEmbedded(t testing.TB, dataDir string, edit func(*config.Config)) *harness {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dataDir
	cfg.Node = "test-node"
	cfg.Delay.Levels = "1s 2s"
	cfg.ShutdownTimeout = 10 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(cfg, WithLogger(testLogger(t)))
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	h := &harness{t: t, app: a, base: "http://" + a.Addr()}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	h.http = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err := a.Stop(ctx)
		if !h.stoppedByTest {
			require.NoError(t, err)
		}
	})
	return h
}

// TestEmbeddedFirstReceive measures the first HTTP receive of a fresh
// subscription in the embedded mode (issue 12: it took 1.1 s and 200 MB).
func TestEmbeddedFirstReceive(t *testing.T) {
	h := startEmbedded(t, t.TempDir(), nil)
	path, _ := newTopic(t)
	sub := h.register(path, "first", `{"tagFilter":"PAY_1001","initialPosition":"earliest"}`)
	res := h.produceJSON(path, `{"messages":[{"payload":"a","tags":["PAY_1001"]}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	start := time.Now()
	r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":10,"waitMs":5000}`))
	took := time.Since(start)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Contains(t, r.Raw, `"uid"`)
	t.Logf("first receive: %v", took)
}

// BenchmarkEmbeddedReceive is one produce, receive and ack over HTTP per
// iteration against the embedded wiring (miniredis runs the consume
// scripts in gopher-lua).
func BenchmarkEmbeddedReceive(b *testing.B) {
	h := startEmbedded(b, b.TempDir(), nil)
	path, _ := newTopic(b)
	sub := h.register(path, "bench", `{"tagFilter":"PAY_1001","initialPosition":"earliest"}`)
	for b.Loop() {
		res := h.produceJSON(path, `{"messages":[{"payload":"a","tags":["PAY_1001"]}]}`)
		require.Equal(b, http.StatusOK, res.Status, res.Raw)
		var got receiveAnswer
		for len(got.Messages) == 0 {
			r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":1,"waitMs":5000}`))
			require.Equal(b, http.StatusOK, r.Status, r.Raw)
			require.NoError(b, json.Unmarshal([]byte(r.Raw), &got))
		}
		ack := h.do(http.MethodPost, sub+"/ack", jsonHeader(), []byte(`{"ackIds":["`+got.Messages[0].AckID+`"]}`))
		require.Equal(b, http.StatusOK, ack.Status, ack.Raw)
	}
}

// TestEmbeddedRedisTTLRealTime: through the sidecar's own wiring, a key
// with a 2 s TTL in the embedded Redis is gone about 2 s later (it was
// never, before: miniredis moves TTLs only when told).
func TestEmbeddedRedisTTLRealTime(t *testing.T) {
	h := startEmbedded(t, t.TempDir(), nil)
	c := redis.NewClient(&redis.Options{Addr: h.app.RedisAddr(), DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	set := time.Now()
	require.NoError(t, c.Set(ctx, "psc-test:ttl", "v", 2*time.Second).Err())
	for c.Exists(ctx, "psc-test:ttl").Val() == 1 {
		require.Less(t, time.Since(set), 2500*time.Millisecond, "a 2 s TTL still there after 2.5 s")
		time.Sleep(5 * time.Millisecond)
	}
	gone := time.Since(set)
	require.Greater(t, gone, 1800*time.Millisecond, "gone too early")
	t.Logf("a 2 s TTL ended after %v", gone)
}

type produceAnswer struct {
	Results []struct {
		UID       string `json:"uid"`
		Status    string `json:"status"`
		Duplicate bool   `json:"duplicate"`
	} `json:"results"`
}

func (h *harness) produceOK(path, body string) produceAnswer {
	h.t.Helper()
	res := h.produceJSON(path, body)
	require.Equal(h.t, http.StatusOK, res.Status, res.Raw)
	var a produceAnswer
	require.NoError(h.t, json.Unmarshal([]byte(res.Raw), &a))
	require.Len(h.t, a.Results, 1, res.Raw)
	return a
}

// TestEmbeddedRestartKeepsState: the default mode keeps across a clean
// restart (same data dir, new process state) an idempotency key (the
// retry is a duplicate with the first uid), a wheel message (it fires
// after the restart, once, with its uid) and a subscription registration.
func TestEmbeddedRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	h := startEmbedded(t, dir, nil)
	path, full := newTopic(t)
	first := h.produceOK(path, `{"messages":[{"payload":"charge-1","idempotencyKey":"bill-42"}]}`)
	require.False(t, first.Results[0].Duplicate)
	wheel := h.produceOK(path, `{"messages":[{"payload":"timeout-check","key":"order-7","deliverAfter":"3s"}]}`)
	require.Equal(t, "scheduled", wheel.Results[0].Status)
	sub := h.register(path, "billing", `{"tagFilter":"PAY_1001 || PAY_1002","initialPosition":"earliest"}`)
	h.stoppedByTest = true
	require.NoError(t, h.app.Stop(context.Background()))

	h = startEmbedded(t, dir, nil)
	again := h.produceOK(path, `{"messages":[{"payload":"charge-1","idempotencyKey":"bill-42"}]}`)
	require.True(t, again.Results[0].Duplicate, "the idempotency key survived the restart")
	require.Equal(t, first.Results[0].UID, again.Results[0].UID, "with the first attempt's uid")

	got := h.do(http.MethodGet, sub, nil, nil)
	require.Equal(t, http.StatusOK, got.Status, "the subscription registration survived: %s", got.Raw)
	require.Contains(t, got.Raw, "PAY_1001 || PAY_1002")

	c := nativeClient(t, h.app.PulsarURL())
	r, err := c.CreateReader(pulsar.ReaderOptions{Topic: full, StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(t, err)
	defer r.Close()
	var fired []string
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for len(fired) < 1 {
		m, err := r.Next(ctx)
		require.NoError(t, err, "the wheel message fired after the restart")
		if string(m.Payload()) == "timeout-check" {
			fired = append(fired, m.Properties()[produce.PropUID])
		}
	}
	require.Equal(t, []string{wheel.Results[0].UID}, fired)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	for {
		m, err := r.Next(ctx2)
		if err != nil {
			break
		}
		require.NotEqual(t, "timeout-check", string(m.Payload()), "the wheel message fired twice")
	}
}

// TestEmbeddedIdempotencyOutOfRedis: the default mode keeps idempotency
// records in its own store, not in the embedded Redis (whose snapshots and
// TTL sweeps pass over every key), and records an earlier version left in
// the embedded Redis move to that store at start, TTL and all.
func TestEmbeddedIdempotencyOutOfRedis(t *testing.T) {
	dir := t.TempDir()
	h := startEmbedded(t, dir, nil)
	path, _ := newTopic(t)
	first := h.produceOK(path, `{"messages":[{"payload":"charge-1","idempotencyKey":"bill-1"}]}`)
	c := redis.NewClient(&redis.Options{Addr: h.app.RedisAddr(), DisableIdentity: true})
	ctx := context.Background()
	keys, err := c.Keys(ctx, proxy.KeyPrefix+"*").Result()
	require.NoError(t, err)
	require.Empty(t, keys, "no idempotency record in the embedded redis")
	require.Equal(t, 1, h.app.localIdem.Len())

	// What an earlier version left: a done record with 30 minutes to live.
	old := proxy.NewRedisIdempotency(c, time.Hour, time.Minute, 2*time.Second)
	cl, err := old.Begin(ctx, "dev", "from-before", "fp", "the-old-uid")
	require.NoError(t, err)
	require.NoError(t, old.Complete(ctx, "dev", "from-before", cl.Owner, "fp", proxy.Result{UID: "the-old-uid", Status: produce.StatusPersisted}))
	require.NoError(t, c.PExpire(ctx, proxy.KeyPrefix+"dev:from-before", 30*time.Minute).Err())
	require.NoError(t, c.Close())
	h.stoppedByTest = true
	require.NoError(t, h.app.Stop(ctx))

	h = startEmbedded(t, dir, nil)
	c = redis.NewClient(&redis.Options{Addr: h.app.RedisAddr(), DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	keys, err = c.Keys(ctx, proxy.KeyPrefix+"*").Result()
	require.NoError(t, err)
	require.Empty(t, keys, "the earlier record left the embedded redis")
	require.Equal(t, 2, h.app.localIdem.Len())
	done, err := h.app.localIdem.Begin(ctx, "dev", "from-before", "fp", "x")
	require.NoError(t, err)
	require.Equal(t, proxy.ClaimDone, done.State)
	require.Equal(t, "the-old-uid", done.Result.UID)
	again := h.produceOK(path, `{"messages":[{"payload":"charge-1","idempotencyKey":"bill-1"}]}`)
	require.True(t, again.Results[0].Duplicate)
	require.Equal(t, first.Results[0].UID, again.Results[0].UID)
}
