package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// TestStartWithPrimaryDown: a sidecar started while its only cluster is
// unreachable starts (issue 12: it used to exit after the level
// subscription's 10 s timeout), answers /healthz, says in /readyz that the
// delay engine waits for the broker, and spools what it is given: a plain
// message, and a wheel message that falls due during the outage (due
// messages go through the durable sender). Once the primary's breaker is
// open, a delayLevel message is answered at once from the wheel (it used to
// wait for the broker and fail with 504) and is spooled when due. When the
// broker comes back the spool replays all three, the level forwarders
// attach, and a delayLevel message is delivered through its level topic.
func TestStartWithPrimaryDown(t *testing.T) {
	broker := minipulsar.RunT(t)
	rds := testredis.Start(t)
	cfg := testConfig(t, broker, rds)
	cfg.Pulsar.OperationTimeout = 3 * time.Second // each attach attempt gives up sooner
	require.NoError(t, broker.Close())            // the ports stay the broker's for Start

	rec := &recorder{}
	a, err := New(cfg, WithLogger(testLogger(t)), WithRecorder(rec))
	require.NoError(t, err)
	began := time.Now()
	require.NoError(t, a.Start(context.Background()), "starts without a broker")
	require.Less(t, time.Since(began), 5*time.Second, "does not wait for the broker")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		require.NoError(t, a.Stop(ctx))
	})
	h := &harness{t: t, app: a, broker: broker, redis: rds, base: "http://" + a.Addr(), rec: rec,
		http: &http.Client{Timeout: 30 * time.Second}}

	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/healthz", nil, nil).Status)
	ready := h.do(http.MethodGet, "/readyz", nil, nil)
	require.Equal(t, http.StatusOK, ready.Status, "degraded, still serving: %s", ready.Raw)
	require.Contains(t, ready.Raw, `"status":"degraded"`)
	require.Contains(t, ready.Raw, `"delay":"waiting for broker: 2 of 2 level forwarders not attached`)

	path, full := newTopic(t)
	res := h.produceJSON(path, `{"messages":[{"payload":"plain"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Equal(t, produce.StatusSpooled, res.Results[0].Status)
	plainUID := res.Results[0].UID

	res = h.produceJSON(path, `{"messages":[{"payload":"wheel","deliverAfter":"1s"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Equal(t, produce.StatusScheduled, res.Results[0].Status, "the wheel needs Redis only")
	wheelUID := res.Results[0].UID
	require.Eventually(t, func() bool { return hasEvent(rec, wheelUID, tracer.Spooled) }, 20*time.Second, 20*time.Millisecond,
		"the wheel message falls due during the outage and is spooled: %v", rec.types(wheelUID))
	fired := eventOf(rec, wheelUID, tracer.Fired)
	require.Equal(t, string(produce.StatusSpooled), fired.Properties["status"], "the fired event says where it went")

	require.Eventually(t, a.primaryDown, 20*time.Second, 20*time.Millisecond, "the primary's breaker opens")
	began = time.Now()
	res = h.produceJSON(path, `{"messages":[{"payload":"level-in-outage","delayLevel":"1s"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Less(t, time.Since(began), 3*time.Second, "answered without waiting for the broker")
	require.Equal(t, produce.StatusScheduled, res.Results[0].Status, res.Raw)
	levelUID := res.Results[0].UID
	require.Eventually(t, func() bool { return hasEvent(rec, levelUID, tracer.Spooled) }, 20*time.Second, 20*time.Millisecond,
		"the level message falls due on the wheel and is spooled: %v", rec.types(levelUID))
	sched := eventOf(rec, levelUID, tracer.Scheduled)
	require.Equal(t, "wheel", sched.Properties["mode"])
	require.Equal(t, "level", sched.Properties["fallbackFrom"])
	require.Equal(t, "1s", sched.Properties["level"])

	require.NoError(t, broker.Start())
	h.client = nativeClient(t, broker.ServiceURL())
	cons := h.subscribe(full)
	got := map[string]string{}
	for len(got) < 3 {
		m, err := receiveWithin(t, cons, 30*time.Second)
		require.NoError(t, err, "replayed after the broker came back; so far %v", got)
		got[m.Properties()[produce.PropUID]] = string(m.Payload())
		require.NoError(t, cons.Ack(m))
	}
	require.Equal(t, map[string]string{plainUID: "plain", wheelUID: "wheel", levelUID: "level-in-outage"}, got)

	require.Eventually(t, func() bool {
		ready = h.do(http.MethodGet, "/readyz", nil, nil)
		return strings.Contains(ready.Raw, `"delay":"ok"`)
	}, 60*time.Second, 100*time.Millisecond, "the level forwarders attach: %s", ready.Raw)
	res = h.produceJSON(path, `{"messages":[{"payload":"level","delayLevel":"1s"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	m, err := receiveWithin(t, cons, 20*time.Second)
	require.NoError(t, err, "a delayLevel message is delivered once the forwarders are attached")
	require.Equal(t, res.Results[0].UID, m.Properties()[produce.PropUID])
	require.NoError(t, cons.Ack(m))
}

func hasEvent(r *recorder, uid string, typ tracer.Type) bool {
	for _, ty := range r.types(uid) {
		if ty == typ {
			return true
		}
	}
	return false
}

func eventOf(r *recorder, uid string, typ tracer.Type) tracer.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.UID == uid && ev.Type == typ {
			return ev
		}
	}
	return tracer.Event{}
}
