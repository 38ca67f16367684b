package consume

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

func fakeClock(clk *minipulsar.FakeClock) func(*Options) {
	return func(o *Options) { o.Clock = clk }
}

func TestAckTimeoutRedelivery(t *testing.T) {
	e := newEnv(t)
	clk := minipulsar.NewFakeClock(time.Now())
	a := e.node(fakeClock(clk))
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{AckTimeout: "10s"})
	msgs := []testMsg{newMsg("A"), newMsg("B"), newMsg()}
	produce(t, e.client, ref.TopicName(), msgs)

	first := a.receiveUntil(ref, 3, 5*time.Second)
	require.Equal(t, msgUIDs(msgs), uids(first))
	require.Empty(t, a.receive(ref, 10, 200), "leased messages must not be handed out again")
	clk.Advance(9 * time.Second)
	require.Empty(t, a.receive(ref, 10, 200), "redelivered before the ack timeout")

	clk.Advance(2 * time.Second)
	again := a.receiveUntil(ref, 3, 5*time.Second)
	require.Equal(t, msgUIDs(msgs), uids(again))
	for _, m := range again {
		require.Equal(t, 1, m.RedeliveryCount)
		for _, f := range first {
			require.NotEqual(t, f.AckID, m.AckID)
		}
	}
	require.Equal(t, AckResponse{Acked: 3}, a.ack(ref, again...))
	// A late ack of the first delivery is accepted and does nothing more.
	require.Equal(t, AckResponse{Ignored: 3}, a.ack(ref, first...))
	e.backlogZero(e.broker, ref)
	require.Empty(t, a.receive(ref, 10, 200))
	require.Equal(t, 3, a.rec.count(tracer.Redelivered))
	require.Equal(t, 3, a.rec.count(tracer.Delivered))
}

// A message handed out by a replica that then stops serving the
// subscription comes back from another replica after the ack timeout: its
// consumer goes idle and closes, the broker redelivers to the other
// replica, which holds the copy until the lease ends and then hands it out.
func TestAckTimeoutRedeliveryOnAnotherReplica(t *testing.T) {
	e := newEnv(t)
	clk := minipulsar.NewFakeClock(time.Now())
	idle := func(o *Options) {
		o.Consumers.IdleTimeout = 300 * time.Millisecond
		o.Consumers.ActiveWindow = 200 * time.Millisecond
	}
	a, b := e.node(fakeClock(clk), idle), e.node(fakeClock(clk))
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{AckTimeout: "10s"})
	msgs := []testMsg{newMsg("A"), newMsg("B")}
	produce(t, e.client, ref.TopicName(), msgs)

	first := a.receiveUntil(ref, 2, 5*time.Second)
	require.Len(t, first, 2)
	// b receives while a's consumer closes: the copies reach b, which
	// must not hand them out while a's lease runs.
	require.Empty(t, b.receive(ref, 10, 1500))
	clk.Advance(11 * time.Second)
	again := b.receiveUntil(ref, 2, 5*time.Second)
	require.Equal(t, msgUIDs(msgs), uids(again))
	for _, m := range again {
		require.Equal(t, 1, m.RedeliveryCount)
	}
	require.Equal(t, AckResponse{Acked: 2}, a.ack(ref, again...))
	e.backlogZero(e.broker, ref)
}

func TestNackWithDelay(t *testing.T) {
	e := newEnv(t)
	clk := minipulsar.NewFakeClock(time.Now())
	a, b := e.node(fakeClock(clk)), e.node(fakeClock(clk))
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{AckTimeout: "1m"})
	msgs := []testMsg{newMsg("A"), newMsg("B"), newMsg("C")}
	produce(t, e.client, ref.TopicName(), msgs)
	got := a.receiveUntil(ref, 3, 5*time.Second)
	require.Len(t, got, 3)
	byUID := map[string]Message{}
	for _, m := range got {
		byUID[m.UID] = m
	}
	now, later, remote := byUID[msgs[0].uid], byUID[msgs[1].uid], byUID[msgs[2].uid]

	// At once, on the replica that handed it out.
	require.Equal(t, NackResponse{Nacked: 1}, a.nack(ref, "", now))
	back := a.receiveUntil(ref, 1, 5*time.Second)
	require.Equal(t, []string{now.UID}, uids(back))
	require.Equal(t, 1, back[0].RedeliveryCount)
	// The old delivery can no longer be nacked.
	require.Equal(t, NackResponse{Ignored: 1}, a.nack(ref, "", now))

	// After 20s, on this replica; after 30s, nacked on the other replica.
	require.Equal(t, NackResponse{Nacked: 1}, a.nack(ref, "20s", later))
	require.Equal(t, NackResponse{Nacked: 1}, b.nack(ref, "30s", remote))
	clk.Advance(19 * time.Second)
	require.Empty(t, a.receive(ref, 10, 300))
	clk.Advance(time.Second)
	back2 := a.receiveUntil(ref, 1, 5*time.Second)
	require.Equal(t, []string{later.UID}, uids(back2))
	require.Empty(t, a.receive(ref, 10, 300))
	clk.Advance(10 * time.Second)
	back3 := a.receiveUntil(ref, 1, 5*time.Second)
	require.Equal(t, []string{remote.UID}, uids(back3))
	require.Equal(t, 1, back3[0].RedeliveryCount)

	require.Equal(t, AckResponse{Acked: 3}, b.ack(ref, append(append(back, back2...), back3...)...))
	e.backlogZero(e.broker, ref)
	require.Equal(t, 3, a.rec.count(tracer.Nacked)+b.rec.count(tracer.Nacked))
}

// redeliverAfter is honoured within about a second on the real clock.
func TestNackDelayRealClock(t *testing.T) {
	e := newEnv(t)
	a := e.node()
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{})
	produce(t, e.client, ref.TopicName(), []testMsg{newMsg("A")})
	got := a.receiveUntil(ref, 1, 5*time.Second)
	require.Len(t, got, 1)
	start := time.Now()
	a.nack(ref, "1500ms", got...)
	back := a.receiveUntil(ref, 1, 5*time.Second)
	took := time.Since(start)
	require.Len(t, back, 1)
	require.GreaterOrEqual(t, took, 1500*time.Millisecond)
	require.Less(t, took, 2500*time.Millisecond)
	a.ack(ref, back...)
}

func TestDeadLetterAfterMaxDeliveries(t *testing.T) {
	e := newEnv(t)
	a := e.node()
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_1", MaxDeliveries: 3})
	m := newMsg("PAY_1", "PAY_9")
	m.props = map[string]string{"order": "7"}
	m.key = "customer-1"
	produce(t, e.client, ref.TopicName(), []testMsg{m})

	var firstID string
	for i := range 3 {
		got := a.receiveUntil(ref, 1, 5*time.Second)
		require.Len(t, got, 1, "delivery %d", i+1)
		require.Equal(t, i, got[0].RedeliveryCount)
		if i == 0 {
			firstID = got[0].MessageID
		}
		a.nack(ref, "", got...)
	}
	require.Empty(t, a.receive(ref, 10, 500), "the fourth delivery must go to the dead-letter topic instead")

	dlq := TopicRef{Tenant: ref.Tenant, Namespace: ref.Namespace, Topic: ref.Topic + "-sub-DLQ"}
	var stored []minipulsar.Message
	require.Eventually(t, func() bool {
		var err error
		stored, err = e.broker.Messages(dlq.Name())
		return err == nil && len(stored) == 1
	}, 5*time.Second, 20*time.Millisecond)
	p := stored[0].Properties
	require.Contains(t, p[PropDeadLetterReason], "3 times")
	require.Equal(t, firstID, p[PropOriginalMessageID])
	require.Equal(t, ref.TopicName(), p[PropOriginalTopic])
	require.Equal(t, "sub", p[PropOriginalSubcription])
	require.Equal(t, m.uid, p[wire.PropUID])
	require.Equal(t, "customer-1", stored[0].Key)
	e.backlogZero(e.broker, ref)

	// The dead-letter topic is consumed over the same API, filters included.
	dref := SubscriptionRef{Tenant: dlq.Tenant, Namespace: dlq.Namespace, Topic: dlq.Topic, Subscription: "ops"}
	a.put(dref, SubscriptionSpec{TagFilter: "PAY_9", InitialPosition: PositionEarliest})
	got := a.receiveUntil(dref, 1, 5*time.Second)
	require.Len(t, got, 1)
	d := got[0]
	require.Equal(t, m.uid, d.UID)
	require.Equal(t, string(m.payload), *d.Payload)
	require.Equal(t, map[string]string{"order": "7"}, d.Properties)
	require.Equal(t, []string{"PAY_1", "PAY_9"}, d.Tags)
	require.NotNil(t, d.DeadLetter)
	require.True(t, strings.Contains(d.DeadLetter.Reason, "maxDeliveries 3"), d.DeadLetter.Reason)
	require.Equal(t, firstID, d.DeadLetter.OriginalMessageID)
	require.Equal(t, 3, d.DeadLetter.Deliveries)
	a.ack(dref, got...)
	e.backlogZero(e.broker, dref)

	require.Eventually(t, func() bool { return a.stats(ref).Totals.DeadLettered == 1 }, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, 1, a.rec.count(tracer.DeadLettered))
}
