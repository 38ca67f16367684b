package delay

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Helpers for tests against minipulsar with the real client.

func newClient(t testing.TB, url string) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, Logger: plog.DefaultNopLogger(),
		OperationTimeout: 10 * time.Second, ConnectionTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// testPublisher is a Publisher with one producer per topic, the way the
// sidecar's produce.Pool behaves, plus fault injection: fail[topic] sends
// fail before reaching the broker.
type testPublisher struct {
	client pulsar.Client

	mu        sync.Mutex
	producers map[string]pulsar.Producer
	fail      map[string]int
	closed    bool
	// onSend, when set before use, sees every message at hand-over.
	onSend func(topic string, m *pulsar.ProducerMessage)
	// unbatched sends every message on its own, flushed at once, as the
	// sidecar's pool does for a lone message (group commit).
	unbatched bool
}

var _ Publisher = (*testPublisher)(nil)

func newPublisher(t testing.TB, client pulsar.Client) *testPublisher {
	p := &testPublisher{client: client, producers: map[string]pulsar.Producer{}, fail: map[string]int{}}
	t.Cleanup(p.close)
	return p
}

func (p *testPublisher) failNext(topic string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail[topic] = n
}

func (p *testPublisher) producer(topic string) (pulsar.Producer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("publisher closed")
	}
	if p.fail[topic] > 0 {
		p.fail[topic]--
		return nil, errors.New("injected send failure")
	}
	if pr, ok := p.producers[topic]; ok {
		return pr, nil
	}
	pr, err := p.client.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: time.Millisecond,
		SendTimeout: 10 * time.Second, DisableBatching: p.unbatched})
	if err != nil {
		return nil, err
	}
	p.producers[topic] = pr
	return pr, nil
}

func (p *testPublisher) SendAsync(ctx context.Context, topic string, msg *pulsar.ProducerMessage, done func(pulsar.MessageID, error)) {
	if p.onSend != nil {
		p.onSend(topic, msg)
	}
	pr, err := p.producer(topic)
	if err != nil {
		done(nil, err)
		return
	}
	pr.SendAsync(ctx, msg, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { done(id, err) })
}

func (p *testPublisher) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, pr := range p.producers {
		pr.Close()
	}
	p.producers = nil
}

// events is a tracer.Recorder that keeps every event.
type events struct {
	mu  sync.Mutex
	all []tracer.Event
}

var _ tracer.Recorder = (*events)(nil)

func (e *events) Record(ev tracer.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) of(typ tracer.Type) []tracer.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []tracer.Event
	for _, ev := range e.all {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func (e *events) uids(typ tracer.Type) []string {
	var out []string
	for _, ev := range e.of(typ) {
		out = append(out, ev.UID)
	}
	slices.Sort(out)
	return out
}

// stored lists the uids of the messages minipulsar holds for topic, in
// store order.
func stored(t testing.TB, srv *minipulsar.Server, topic string) []string {
	t.Helper()
	ms, err := srv.Messages(topic)
	if err != nil {
		return nil // no such topic yet
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Properties[PropUID])
	}
	return out
}

// subscribe opens a consumer on topic with subscription type typ.
func subscribe(t testing.TB, client pulsar.Client, topic, sub string, typ pulsar.SubscriptionType) pulsar.Consumer {
	t.Helper()
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub, Type: typ,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// receive takes n messages from c, acknowledging them; the deadline is a
// safety net, not a timing assertion.
func receive(t testing.TB, c pulsar.Consumer, n int) []pulsar.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out := make([]pulsar.Message, 0, n)
	for len(out) < n {
		m, err := c.Receive(ctx)
		require.NoError(t, err, "received %d of %d", len(out), n)
		require.NoError(t, c.Ack(m))
		out = append(out, m)
	}
	return out
}

// eventually waits for cond, polling; a safety net for asynchronous work
// (a broker round trip), never a stand-in for controlled time.
func eventually(t testing.TB, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 2*time.Millisecond, msgAndArgs...)
}

// send publishes msg through pub and waits for the broker's answer or ctx.
func send(ctx context.Context, pub Publisher, topic string, msg *pulsar.ProducerMessage) (pulsar.MessageID, error) {
	type result struct {
		id  pulsar.MessageID
		err error
	}
	ch := make(chan result, 1)
	pub.SendAsync(ctx, topic, msg, func(id pulsar.MessageID, err error) { ch <- result{id, err} })
	select {
	case r := <-ch:
		return r.id, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
