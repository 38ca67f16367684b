package durable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

var quiet = slog.New(slog.DiscardHandler)

// testLogger shows errors in the test output and drops the rest: faults
// are the point of these tests, and each one logs.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: logLevel}))
}

// newBroker starts a minipulsar that the test stops and starts at will; it
// is closed when the test ends.
func newBroker(t testing.TB, opts minipulsar.Options) *minipulsar.Server {
	t.Helper()
	b := minipulsar.NewServer(opts)
	require.NoError(t, b.Start())
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// deadBroker is a broker address with nothing listening: started once to
// get ports, then stopped. Start it to bring the cluster up.
func deadBroker(t testing.TB) *minipulsar.Server {
	t.Helper()
	b := newBroker(t, minipulsar.Options{})
	require.NoError(t, b.Close())
	return b
}

// clusterEnv is one cluster as the sidecar sees it: a client, a producer
// pool, and the PulsarSender over them.
type clusterEnv struct {
	broker *minipulsar.Server
	client pulsar.Client
	pool   *produce.Pool
	sender *produce.PulsarSender
}

// connect opens a client and a pool to b; both are closed when the test
// ends, after the Sender (cleanups run in reverse).
func connect(t testing.TB, b *minipulsar.Server, name string) *clusterEnv {
	t.Helper()
	client, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:               b.ServiceURL(),
		OperationTimeout:  time.Second,
		ConnectionTimeout: time.Second,
		Logger:            pulsarlog.NewLoggerWithSlog(quiet),
		MetricsRegisterer: prometheus.NewRegistry(),
	})
	require.NoError(t, err)
	t.Cleanup(client.Close)
	pool := produce.NewPool(client, produce.PoolOptions{SendTimeout: 3 * time.Second, Logger: quiet})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, pool.Close(ctx))
	})
	return &clusterEnv{broker: b, client: client, pool: pool, sender: &produce.PulsarSender{Pool: pool, Cluster: name}}
}

// testOptions are fast settings: short attempts, quick probes and
// recovery. Tests that measure the defaults say so.
func testOptions(t testing.TB, dir string, primary, dr *clusterEnv) Options {
	o := Options{
		Primary:        Cluster{Name: "primary", Sender: primary.sender},
		SpoolDir:       dir,
		Spool:          spool.Options{CheckpointInterval: 20 * time.Millisecond},
		AttemptTimeout: 300 * time.Millisecond,
		Breaker:        BreakerOptions{MinOpen: 200 * time.Millisecond, RecoverProbes: 2, HalfOpenTrials: 2},
		ProbeInterval:  50 * time.Millisecond,
		ProbeTimeout:   300 * time.Millisecond,
		Logger:         testLogger(t),
		Recorder:       &recorder{},
		Registerer:     prometheus.NewRegistry(),
	}
	if dr != nil {
		o.DR = &Cluster{Name: "dr", Sender: dr.sender}
	}
	return o
}

// start opens a Sender and closes it when the test ends, before the pools.
func start(t testing.TB, opts Options) *Sender {
	t.Helper()
	s, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

const testTopic = "persistent://pay/settle/orders"

// newMessage is message i as the produce path hands it over.
func newMessage(i int, topic string) *produce.Message {
	return &produce.Message{
		UID:        produce.NewUID(),
		App:        "billing",
		Topic:      topic,
		Key:        fmt.Sprintf("order-%d", i%17),
		Tags:       []string{"PAY_1001", fmt.Sprintf("T%d", i%5)},
		Properties: map[string]string{"n": fmt.Sprint(i), "currency": "EUR"},
		EventTime:  time.Now().Add(-time.Duration(i) * time.Millisecond).Truncate(time.Millisecond),
		Payload:    fmt.Appendf(nil, `{"order":%d,"amount":"12.50"}`, i),
		AcceptedAt: time.Now(),
	}
}

type result struct {
	rc  produce.Receipt
	err error
}

// send hands m over and waits for its outcome; timeout is the request
// deadline.
func send(t testing.TB, s produce.Sender, m *produce.Message, timeout time.Duration) (produce.Receipt, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ch := make(chan result, 1)
	s.SendAsync(ctx, m, func(rc produce.Receipt, err error) { ch <- result{rc, err} })
	select {
	case r := <-ch:
		return r.rc, r.err
	case <-time.After(timeout + 5*time.Second):
		t.Fatalf("no outcome for %s within %v after the deadline", m.UID, 5*time.Second)
	}
	return produce.Receipt{}, nil
}

// stored maps each psc-uid on topic to how many times the broker holds it.
func stored(t testing.TB, b *minipulsar.Server, topic string) map[string]int {
	t.Helper()
	msgs, err := b.Messages(topic)
	if errors.Is(err, minipulsar.ErrTopicNotFound) {
		return map[string]int{}
	}
	require.NoError(t, err)
	out := make(map[string]int, len(msgs))
	for _, m := range msgs {
		out[m.Properties[produce.PropUID]]++
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Sender) state(name string) State {
	for _, c := range s.clusters {
		if c.name == name {
			return c.br.State()
		}
	}
	panic("no cluster " + name)
}

// recorder keeps trace events in memory.
type recorder struct {
	mu     sync.Mutex
	events []tracer.Event
}

func (r *recorder) Record(ev tracer.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// of returns the events of type typ, in order.
func (r *recorder) of(typ tracer.Type) []tracer.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []tracer.Event
	for _, ev := range r.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// transitionsOf returns a cluster's breaker transitions, counted by the
// state entered, from the psc_cluster_transitions_total metric.
func transitionsOf(t testing.TB, reg *prometheus.Registry, cluster string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "psc_cluster_transitions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["cluster"] == cluster {
				out[labels["to"]] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// metricValue returns the value of a counter or gauge with the given
// labels (all of them), or 0 when absent.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

var logLevel = slog.LevelError

// unseenMetrics are the metrics of a Sender a test builds by hand (New
// always builds them; their methods do not check for nil).
func unseenMetrics() *metricSet {
	return newMetrics(nil, func() spool.Stats { return spool.Stats{} }, time.Now)
}
