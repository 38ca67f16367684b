package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// TestGracefulShutdown: Stop lets an in-flight request finish with its
// broker acknowledgement before anything closes, then refuses new
// connections; a second Stop returns the same result.
func TestGracefulShutdown(t *testing.T) {
	h := start(t, nil)
	p, full := newTopic(t)
	require.Equal(t, http.StatusOK, h.produceJSON(p, `{"messages":[{"payload":"warm-up"}]}`).Status)

	accepted := make(chan struct{})
	h.rec.onEvent(func(ev tracer.Event) {
		if ev.Type == tracer.Accepted && ev.Key == "in-flight" {
			close(accepted)
		}
	})
	h.broker.DelayNextSends(1, 300*time.Millisecond)
	done := make(chan response, 1)
	go func() { done <- h.produceJSON(p, `{"messages":[{"payload":"slow","key":"in-flight"}]}`) }()
	<-accepted

	stopStart := time.Now()
	require.NoError(t, h.app.Stop(context.Background()))
	stopTook := time.Since(stopStart)
	res := <-done
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	assert.GreaterOrEqual(t, stopTook, 200*time.Millisecond, "Stop waited for the in-flight request")

	msgs := h.readAll(full)
	require.Len(t, msgs, 2)
	assert.Equal(t, res.Results[0].MessageID, wire.FormatMessageID(msgs[1].ID()))

	_, err := http.Post(h.base+"/v1/topics/"+p+"/messages", "text/plain", strings.NewReader("late"))
	require.Error(t, err, "the listener is closed")
	require.NoError(t, h.app.Stop(context.Background()), "Stop is idempotent")
}

// TestShutdownDeadline: Stop gives up on a request that outlasts the
// shutdown deadline instead of hanging, and reports it.
func TestShutdownDeadline(t *testing.T) {
	h := start(t, func(c *config.Config) { c.ShutdownTimeout = 200 * time.Millisecond })
	p, _ := newTopic(t)
	require.Equal(t, http.StatusOK, h.produceJSON(p, `{"messages":[{"payload":"warm-up"}]}`).Status)
	accepted := make(chan struct{})
	h.rec.onEvent(func(ev tracer.Event) {
		if ev.Type == tracer.Accepted && ev.Key == "stuck" {
			close(accepted)
		}
	})
	h.broker.DelayNextSends(1, 1500*time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodPost, h.base+"/v1/topics/"+p+"/messages", strings.NewReader("stuck"))
		req.Header.Set(proxy.HeaderKey, "stuck")
		if res, err := h.http.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}()
	<-accepted
	h.stoppedByTest = true
	stopStart := time.Now()
	err := h.app.Stop(context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(stopStart), time.Second, "Stop keeps to shutdownTimeout")
	<-done
	// Let the delayed send finish so the client's goroutines end before
	// the leak check.
	h.broker.DropConnections()
}

// TestHealthAndMetrics: /healthz, /readyz and /metrics answer without a
// token, and the metrics count what happened.
func TestHealthAndMetrics(t *testing.T) {
	h := start(t, nil)
	p, _ := newTopic(t)
	body := `{"messages":[{"payload":"x","idempotencyKey":"m1"}]}`
	require.Equal(t, http.StatusOK, h.produceJSON(p, body).Status)
	require.Equal(t, http.StatusOK, h.produceJSON(p, body).Status)
	require.Equal(t, http.StatusBadRequest, h.produceJSON(p, `{}`).Status)

	res := h.do(http.MethodGet, "/healthz", nil, nil)
	assert.Equal(t, http.StatusOK, res.Status)
	// The level forwarders attach in the background (issue 12): degraded
	// for a moment after Start, then ready.
	require.Eventually(t, func() bool {
		res = h.do(http.MethodGet, "/readyz", nil, nil)
		return strings.Contains(res.Raw, `"status":"ready"`)
	}, 10*time.Second, 10*time.Millisecond, "last answer %s", res.Raw)
	assert.Equal(t, http.StatusOK, res.Status, res.Raw)
	assert.JSONEq(t, `{"status":"ready","checks":{"delay":"ok","durability":"ok","redis":"ok"}}`, res.Raw)

	res = h.do(http.MethodGet, "/metrics", nil, nil)
	require.Equal(t, http.StatusOK, res.Status)
	for _, want := range []string{
		`psc_http_requests_total{code="200",method="POST",route="/v1/topics/:tenant/:namespace/:topic/messages"} 2`,
		`psc_http_requests_total{code="400",method="POST",route="/v1/topics/:tenant/:namespace/:topic/messages"} 1`,
		`psc_http_request_duration_seconds_bucket{code="200",method="POST",route="/v1/topics/:tenant/:namespace/:topic/messages"`,
		`psc_produce_messages_total{status="persisted"} 1`,
		`psc_produce_messages_total{status="duplicate"} 1`,
		`psc_idempotency_hits_total 1`,
		`psc_http_errors_total{code="EMPTY_BATCH"} 1`,
		`psc_producer_pool_size 1`,
		`psc_broker_ack_seconds_count 1`,
		`pulsar_client_producers_opened`,
		`go_goroutines`,
	} {
		assert.Contains(t, res.Raw, want)
	}
}

// TestEmbeddedMode: with no Pulsar or Redis configured the sidecar runs
// both in-process; messages survive a restart in the data directory.
func TestEmbeddedMode(t *testing.T) {
	dataDir := t.TempDir()
	run := func() *App {
		cfg := config.Default()
		cfg.Listen = "127.0.0.1:0"
		cfg.DataDir = dataDir
		a, err := New(cfg, WithLogger(testLogger(t)))
		require.NoError(t, err)
		require.NoError(t, a.Start(context.Background()))
		return a
	}
	a := run()
	base := "http://" + a.Addr()
	post := func(body string) response {
		res, err := http.Post(base+"/v1/topics/public/default/demo/messages", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		require.Equal(t, http.StatusOK, res.StatusCode, "%s", data)
		return response{Raw: string(data)}
	}
	first := post(`{"messages":[{"payload":"hello","tags":["PAY_1001"],"idempotencyKey":"e1"}]}`)
	again := post(`{"messages":[{"payload":"hello","tags":["PAY_1001"],"idempotencyKey":"e1"}]}`)
	assert.Contains(t, again.Raw, `"duplicate":true`, "the in-process Redis keeps idempotency keys")
	assert.Contains(t, first.Raw, `"cluster":"embedded"`)
	require.NoError(t, a.Stop(context.Background()))
	http.DefaultClient.CloseIdleConnections()

	a = run()
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	c := nativeClient(t, a.PulsarURL())
	r, err := c.CreateReader(pulsar.ReaderOptions{Topic: "public/default/demo", StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(t, err)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.Next(ctx)
	require.NoError(t, err, "the message survived the restart")
	assert.Equal(t, "hello", string(m.Payload()))
	assert.Equal(t, "PAY_1001", m.Properties()[produce.PropTags])
	assert.False(t, r.HasNext())
}
