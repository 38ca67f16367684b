package consume

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// lostAcks is a consumer whose acknowledgements never reach the broker, as
// when the connection drops while grouped acks wait to be sent.
type lostAcks struct {
	pulsar.Consumer
	n atomic.Int64
}

func (l *lostAcks) AckID(pulsar.MessageID) error {
	l.n.Add(1)
	return nil
}

// TestFilteredCountedOnceWhenRedelivered: filtered messages whose acks were
// lost come back after the consumer reconnects (the broker redelivers what
// a consumer had not acknowledged when it went away). They are acknowledged
// again, this time for good, but counted and traced once: Filtered counts
// messages, not deliveries.
func TestFilteredCountedOnceWhenRedelivered(t *testing.T) {
	e := newEnv(t)
	a := e.node()
	ref := newRef("hits")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_HIT"})
	require.Empty(t, a.receive(ref, 10, 50)) // starts the engine
	eng := a.svc.existingEngine(ref.Path())
	require.NotNil(t, eng)
	cc := eng.consumers[0]
	require.Eventually(t, func() bool { return cc.cons.Load() != nil }, 10*time.Second, 10*time.Millisecond)
	real := cc.cons.Load()
	lost := &lostAcks{Consumer: real.Consumer}
	cc.cons.Store(&pulsarConsumer{lost})

	msgs := []testMsg{newMsg("PAY_MISS"), newMsg("PAY_OTHER"), newMsg()}
	produceEach(t, e.client, ref.TopicName(), msgs)
	require.Eventually(t, func() bool {
		require.Empty(t, a.receive(ref, 10, 50)) // keeps the engine active, so the pump reads
		return lost.n.Load() == int64(len(msgs))
	}, 10*time.Second, time.Millisecond)
	require.EqualValues(t, len(msgs), a.stats(ref).Totals.Filtered)
	n, err := e.broker.Backlog(ref.TopicName(), ref.Subscription)
	require.NoError(t, err)
	require.EqualValues(t, len(msgs), n, "the acks were lost")

	// Acks reach the broker again; the topic is unloaded, so the consumer
	// reconnects and the broker sends the three messages once more.
	cc.cons.Store(real)
	require.NoError(t, e.broker.UnloadTopic(ref.TopicName()))
	require.Eventually(t, func() bool {
		require.Empty(t, a.receive(ref, 10, 50))
		n, err := e.broker.Backlog(ref.TopicName(), ref.Subscription)
		return err == nil && n == 0
	}, 10*time.Second, time.Millisecond, "the redelivered copies are acknowledged")
	require.EqualValues(t, len(msgs), lost.n.Load()) // nothing more went to the lost consumer

	st := a.stats(ref)
	require.EqualValues(t, len(msgs), st.Totals.Filtered, "%+v", st.Totals)
	require.Zero(t, st.Totals.Delivered)
	require.EqualValues(t, 1, st.Tags["PAY_MISS"].Filtered)
	require.EqualValues(t, 1, st.Tags[TagNone].Filtered)
	require.Equal(t, len(msgs), a.rec.count(tracer.Filtered))
}

// TestFilteredSeenForgetsTheOldest: a copy seen again within the capacity
// is not first; past it, the oldest copies are forgotten, and memory stays
// at the capacity.
func TestFilteredSeenForgetsTheOldest(t *testing.T) {
	f := newFilteredSeen(3)
	k := func(entry int64) copyKey { return copyKey{ledger: 7, entry: entry} }
	for i := range int64(3) {
		require.True(t, f.first(k(i)))
	}
	for i := range int64(3) {
		require.False(t, f.first(k(i)), "entry %d", i)
	}
	require.False(t, f.first(k(1)))
	require.True(t, f.first(copyKey{cluster: 1, ledger: 7, entry: 1}), "another cluster's copy is another copy")
	// Entry 0 was forgotten to make room for it; taking 0 back pushes out
	// 1, the oldest then; 2 is still there.
	require.True(t, f.first(k(0)))
	require.False(t, f.first(k(2)))
	require.Len(t, f.set, 3)
	require.Len(t, f.ring, 3)
}

// BenchmarkFilteredSeen is what remembering costs a filtered message, with
// an engine's default memory (one consumer, receiver queue 100).
func BenchmarkFilteredSeen(b *testing.B) {
	f := newFilteredSeen(2*100 + filteredMemoryPerConsumer)
	var entry int64
	for b.Loop() {
		if !f.first(copyKey{ledger: 7, entry: entry}) {
			b.Fatal("seen")
		}
		entry++
	}
}
