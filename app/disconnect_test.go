package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// logBuffer collects the sidecar's log lines for a test to inspect.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startLogged is start(t, nil) with every log line from Debug up kept in logs.
func startLogged(t *testing.T) (*harness, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	rec := &recorder{}
	h := startApp(t, nil, WithRecorder(rec),
		WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	h.rec = rec
	return h, logs
}

// TestProduceClientClosedRequest: a client that gives up while its message
// is with the broker is not a timeout. The sidecar records 499
// CLIENT_CLOSED_REQUEST (metrics, an info log line, no error line), still
// waits for the broker's answer and stores it for the idempotency key, so
// the client's retry with the same key gets the message that was stored
// instead of producing a second one.
func TestProduceClientClosedRequest(t *testing.T) {
	h, logs := startLogged(t)
	p, full := newTopic(t)
	require.Equal(t, http.StatusOK, h.produceJSON(p, `{"messages":[{"payload":"warm-up"}]}`).Status) // the producer exists

	accepted := make(chan string, 1)
	h.rec.onEvent(func(ev tracer.Event) {
		if ev.Type == tracer.Accepted && ev.Topic == full {
			select {
			case accepted <- ev.UID:
			default:
			}
		}
	})
	// Held for less than durability.attemptTimeout (1 s): a longer hold
	// makes the durable sender try again, and the broker then stores both
	// attempts (same uid; docs/produce.md, "Durability"), which is not what this test
	// is about.
	h.broker.DelayNextSends(1, 600*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/v1/topics/"+p+"/messages", strings.NewReader("charge 10 EUR"))
	require.NoError(t, err)
	req.Header.Set(proxy.HeaderIdempotencyKey, "bill-1")
	errc := make(chan error, 1)
	go func() {
		res, err := h.http.Do(req)
		if err == nil {
			res.Body.Close()
			err = errors.New("the request was answered: " + res.Status)
		}
		errc <- err
	}()
	var uid string
	select {
	case uid = <-accepted: // handed to the sender; the broker holds it for 0.6 s
	case <-time.After(10 * time.Second):
		t.Fatal("the message was never accepted")
	}
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)

	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "code="+proxy.CodeClientClosedRequest) },
		5*time.Second, 10*time.Millisecond, "logs:\n%s", logs)

	// The retry finds the first attempt in flight, waits for it and answers
	// its result: the uid the sidecar gave the message the client never saw.
	retry := h.do(http.MethodPost, "/v1/topics/"+p+"/messages", http.Header{proxy.HeaderIdempotencyKey: {"bill-1"}}, []byte("charge 10 EUR"))
	require.Equal(t, http.StatusOK, retry.Status, retry.Raw)
	require.Len(t, retry.Results, 1)
	assert.Equal(t, uid, retry.Results[0].UID)
	assert.True(t, retry.Results[0].Duplicate, "answered from the idempotency store")
	assert.Equal(t, produce.StatusPersisted, retry.Results[0].Status)

	var charges []string
	for _, m := range h.readAll(full) {
		if m.Properties()[produce.PropIdempotencyKey] == "bill-1" {
			charges = append(charges, m.ID().String())
			assert.Equal(t, "charge 10 EUR", string(m.Payload()))
		}
	}
	assert.Len(t, charges, 1, "exactly one message for the key on the broker")

	out := logs.String()
	var closed string
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, "code="+proxy.CodeClientClosedRequest) {
			closed = line
		}
	}
	assert.Contains(t, closed, "level=INFO", "a client going away is not an error of ours")
	assert.NotContains(t, out, proxy.CodeProduceTimeout)
	assert.NotContains(t, out, "level=ERROR")

	metrics := h.do(http.MethodGet, "/metrics", nil, nil)
	require.Equal(t, http.StatusOK, metrics.Status)
	assert.Contains(t, metrics.Raw, `psc_http_errors_total{code="CLIENT_CLOSED_REQUEST"} 1`)
	assert.Contains(t, metrics.Raw, `psc_http_requests_total{code="499",method="POST",route="/v1/topics/:tenant/:namespace/:topic/messages"} 1`)
	assert.NotContains(t, metrics.Raw, `code="PRODUCE_TIMEOUT"`)
	assert.Contains(t, metrics.Raw, `psc_produce_messages_total{status="persisted"} 2`, "the warm-up and the charge")
}
