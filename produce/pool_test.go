package produce

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/fakeclock"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

func testClient(t testing.TB, url string) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{
		URL: url, OperationTimeout: 10 * time.Second,
		Logger:            pulsarlog.NewLoggerWithSlog(slog.New(slog.DiscardHandler)),
		MetricsRegisterer: prometheus.NewRegistry(),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func newTestPool(t testing.TB, opts PoolOptions) (*Pool, *minipulsar.Server, pulsar.Client) {
	t.Helper()
	broker := minipulsar.RunT(t)
	client := testClient(t, broker.ServiceURL())
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := NewPool(client, opts)
	t.Cleanup(func() { require.NoError(t, p.Close(context.Background())) })
	return p, broker, client
}

// send sends one message and waits for its outcome.
func send(t testing.TB, p *Pool, topic, payload string) (pulsar.MessageID, error) {
	t.Helper()
	type out struct {
		id  pulsar.MessageID
		err error
	}
	ch := make(chan out, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.SendAsync(ctx, topic, &pulsar.ProducerMessage{Payload: []byte(payload)}, func(id pulsar.MessageID, err error) { ch <- out{id, err} })
	o := <-ch
	return o.id, o.err
}

// TestPoolReusesProducers: one producer per topic, created on first use.
func TestPoolReusesProducers(t *testing.T) {
	p, _, _ := newTestPool(t, PoolOptions{})
	assert.Equal(t, 0, p.Len())
	for i := range 3 {
		_, err := send(t, p, "persistent://a/b/one", "x")
		require.NoError(t, err, i)
	}
	assert.Equal(t, 1, p.Len())
	_, err := send(t, p, "persistent://a/b/two", "x")
	require.NoError(t, err)
	assert.Equal(t, 2, p.Len())
}

// TestPoolConcurrentFirstUse: many senders racing on a new topic share one
// producer.
func TestPoolConcurrentFirstUse(t *testing.T) {
	p, _, client := newTestPool(t, PoolOptions{})
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			_, err := send(t, p, "persistent://a/b/race", "x")
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, 1, p.Len())
	r, err := client.CreateReader(pulsar.ReaderOptions{Topic: "persistent://a/b/race", StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(t, err)
	defer r.Close()
	n := 0
	for r.HasNext() {
		_, err := r.Next(context.Background())
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 32, n)
}

// TestPoolIdleEviction: producers unused for IdleTimeout are closed;
// used ones stay.
func TestPoolIdleEviction(t *testing.T) {
	clock := fakeclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	p, _, _ := newTestPool(t, PoolOptions{IdleTimeout: time.Minute, Now: clock.Now})
	_, err := send(t, p, "persistent://a/b/old", "x")
	require.NoError(t, err)
	clock.Advance(40 * time.Second)
	_, err = send(t, p, "persistent://a/b/new", "x")
	require.NoError(t, err)
	clock.Advance(30 * time.Second)
	p.EvictIdle()
	assert.Equal(t, 1, p.Len(), "old is idle for 70s, new for 30s")
	clock.Advance(30 * time.Second)
	p.EvictIdle()
	assert.Equal(t, 0, p.Len())
	_, err = send(t, p, "persistent://a/b/old", "again")
	require.NoError(t, err, "an evicted topic gets a new producer")
	assert.Equal(t, 1, p.Len())
}

// TestPoolBound: beyond MaxProducers the least recently used idle
// producer is closed.
func TestPoolBound(t *testing.T) {
	p, _, _ := newTestPool(t, PoolOptions{MaxProducers: 2})
	for _, topic := range []string{"t1", "t2", "t1", "t3"} {
		_, err := send(t, p, "persistent://a/b/"+topic, "x")
		require.NoError(t, err)
	}
	assert.Equal(t, 2, p.Len())
	p.mu.Lock()
	_, hasT2 := p.entries["persistent://a/b/t2"]
	_, hasT1 := p.entries["persistent://a/b/t1"]
	p.mu.Unlock()
	assert.False(t, hasT2, "t2 was the least recently used")
	assert.True(t, hasT1)
}

// TestPoolCloseFlushes: Close waits for messages in flight; later sends
// fail with ErrPoolClosed.
func TestPoolCloseFlushes(t *testing.T) {
	p, broker, _ := newTestPool(t, PoolOptions{})
	_, err := send(t, p, "persistent://a/b/c", "warm-up")
	require.NoError(t, err)
	broker.DelayNextSends(1, 200*time.Millisecond)
	done := make(chan error, 1)
	p.SendAsync(context.Background(), "persistent://a/b/c", &pulsar.ProducerMessage{Payload: []byte("slow")},
		func(_ pulsar.MessageID, err error) { done <- err })
	require.NoError(t, p.Close(context.Background()))
	select {
	case err := <-done:
		require.NoError(t, err, "the pending message was acknowledged before Close returned")
	default:
		t.Fatal("Close returned before the pending message's outcome")
	}
	_, err = send(t, p, "persistent://a/b/c", "late")
	assert.ErrorIs(t, err, ErrPoolClosed)
	require.NoError(t, p.Close(context.Background()), "Close is idempotent")
}

// TestPoolCreateFailure: a producer that cannot be created fails the send
// and is retried by the next one.
func TestPoolCreateFailure(t *testing.T) {
	p, broker, _ := newTestPool(t, PoolOptions{})
	broker.RefuseLookups(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	errs := make(chan error, 1)
	p.SendAsync(ctx, "persistent://a/b/c", &pulsar.ProducerMessage{Payload: []byte("x")}, func(_ pulsar.MessageID, err error) { errs <- err })
	require.Error(t, <-errs)
	broker.RefuseLookups(false)
	require.Eventually(t, func() bool {
		_, err := send(t, p, "persistent://a/b/c", "x")
		return err == nil
	}, 20*time.Second, 100*time.Millisecond)
}

// TestPoolGroupCommit: with the batch timer out of the way (one minute), a
// lone message still goes at once, and messages that arrive while a flush
// is in flight share the next one: 32 concurrent sends take two entries.
func TestPoolGroupCommit(t *testing.T) {
	p, broker, _ := newTestPool(t, PoolOptions{BatchingMaxPublishDelay: time.Minute})
	topic := "persistent://a/b/group"
	start := time.Now()
	_, err := send(t, p, topic, "alone")
	require.NoError(t, err)
	require.Less(t, time.Since(start), 5*time.Second, "a lone message does not wait for the batch timer")

	broker.DelayNextSends(1, 300*time.Millisecond) // hold the first flush, the others queue behind it
	ids := make([]pulsar.MessageID, 32)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			id, err := send(t, p, topic, "x")
			assert.NoError(t, err)
			ids[i] = id
		})
	}
	wg.Wait()
	entries := map[[2]int64]int{}
	for _, id := range ids {
		require.NotNil(t, id)
		entries[[2]int64{id.LedgerID(), id.EntryID()}]++
	}
	assert.LessOrEqual(t, len(entries), 3, "32 messages in %d broker entries: %v", len(entries), entries)
}
