package app

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
)

// embeddedHarness runs the sidecar in its default mode (no Pulsar, no
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
