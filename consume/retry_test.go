package consume

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

func TestStateIDKeepsRetryCopiesApart(t *testing.T) {
	k := copyKey{ledger: 3, entry: 4, batch: -1}
	for _, tc := range []struct {
		uid  string
		step int
		want string
	}{
		{"u1", 0, "u1"},
		{"u1", 1, "u1#retry1"},
		{"u1", 12, "u1#retry12"},
		{"", 2, "m:" + k.String()}, // no uid: the position is unique anyway
	} {
		require.Equal(t, tc.want, stateIDFor(tc.uid, tc.step, k, ""), "%q step %d", tc.uid, tc.step)
		a := AckID{Ledger: 3, Entry: 4, BatchIdx: -1, UID: tc.uid, RetryStep: tc.step}
		require.Equal(t, tc.want, a.stateID(), "the ackId carries the step")
	}
	for _, tc := range []struct {
		props map[string]string
		want  int
	}{
		{nil, 0},
		{map[string]string{wire.PropRetryStep: "3"}, 3},
		{map[string]string{wire.PropRetryStep: "x"}, 0},
		{map[string]string{wire.PropRetryStep: "-1"}, 0},
	} {
		require.Equal(t, tc.want, retryStepOf(tc.props), "%v", tc.props)
	}
}

// The per-subscription duplicate check drops a second copy of a uid, but
// not the copy a retry plan re-published: it keeps the uid and carries
// psc-retry-step, and the check keys on both.
func TestRetryCopyIsNotADuplicate(t *testing.T) {
	e := newEnv(t)
	a := e.node()
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{})
	orig := newMsg("A")
	orig.props = map[string]string{wire.PropRetryPlan: "1s,2s"}
	produce(t, e.client, ref.TopicName(), []testMsg{orig})
	got := a.receiveUntil(ref, 1, 5*time.Second)
	require.Equal(t, AckResponse{Acked: 1}, a.ack(ref, got...))

	dup := orig
	retry := orig
	retry.props = map[string]string{wire.PropRetryPlan: "1s,2s", wire.PropRetryStep: "1"}
	retry.payload = []byte("the retry")
	produce(t, e.client, ref.TopicName(), []testMsg{dup, retry})
	got = a.receiveUntil(ref, 1, 5*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, orig.uid, got[0].UID)
	require.Equal(t, "the retry", *got[0].Payload, "the plain duplicate is dropped, the retry copy is not")
	require.Empty(t, a.receive(ref, 10, 300))
	require.Equal(t, AckResponse{Acked: 1}, a.ack(ref, got...), "the ackId names the retry copy's state")

	produce(t, e.client, ref.TopicName(), []testMsg{retry})
	require.Empty(t, a.receive(ref, 10, 500), "a second copy of the same retry step is a duplicate")
}

// A nack with retry hands the next step to Options.Retry and acknowledges
// the copy; with the plan used up the message is dead-lettered.
func TestNackRetryFollowsThePlan(t *testing.T) {
	e := newEnv(t)
	clk := minipulsar.NewFakeClock(time.Now())
	var mu sync.Mutex
	var scheduled []RetryMessage
	a := e.node(fakeClock(clk), func(o *Options) {
		o.Retry = func(_ context.Context, m RetryMessage) error {
			mu.Lock()
			defer mu.Unlock()
			scheduled = append(scheduled, m)
			return nil
		}
	})
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{AckTimeout: "10s"})
	planned := newMsg("A")
	planned.props = map[string]string{wire.PropRetryPlan: "5s", "orderId": "42"}
	plain := newMsg("A")
	produce(t, e.client, ref.TopicName(), []testMsg{planned, plain})
	got := a.receiveUntil(ref, 2, 5*time.Second)

	var resp NackResponse
	status, _ := a.do("POST", subPath(ref)+"/nack", NackRequest{AckIDs: ackIDs(got), Retry: true}, &resp)
	require.Equal(t, 200, status)
	require.Equal(t, NackResponse{Nacked: 2, Retried: 1}, resp)
	mu.Lock()
	require.Len(t, scheduled, 1)
	m := scheduled[0]
	mu.Unlock()
	require.Equal(t, planned.uid, m.UID)
	require.Equal(t, ref.TopicName(), m.Topic)
	require.Equal(t, 1, m.Step)
	require.Equal(t, "1", m.Properties[wire.PropRetryStep])
	require.Equal(t, "42", m.Properties["orderId"])
	require.Equal(t, planned.uid, m.Properties[wire.PropUID])
	require.True(t, m.DueAt.Equal(clk.Now().Add(5*time.Second)), "due %s", m.DueAt)

	again := a.receiveUntil(ref, 1, 5*time.Second)
	require.Equal(t, plain.uid, again[0].UID, "without a plan: a plain nack, back at once")
	require.Equal(t, AckResponse{Acked: 1}, a.ack(ref, again...))
	clk.Advance(11 * time.Second)
	require.Empty(t, a.receive(ref, 10, 300), "the retried copy was acknowledged")

	// The re-published copy, at its last step: retry dead-letters it.
	next := planned
	next.props = m.Properties
	produce(t, e.client, ref.TopicName(), []testMsg{next})
	last := a.receiveUntil(ref, 1, 5*time.Second)
	var resp2 NackResponse
	status, _ = a.do("POST", subPath(ref)+"/nack", NackRequest{AckIDs: ackIDs(last), Retry: true}, &resp2)
	require.Equal(t, 200, status)
	require.Equal(t, NackResponse{Nacked: 1, DeadLettered: 1}, resp2)
	dlq := SubscriptionRef{Tenant: ref.Tenant, Namespace: ref.Namespace, Topic: ref.Topic + "-sub-DLQ", Subscription: "ops"}
	a.put(dlq, SubscriptionSpec{InitialPosition: "earliest"})
	dead := a.receiveUntil(dlq, 1, 5*time.Second)
	require.Equal(t, planned.uid, dead[0].UID)
	require.Equal(t, ReasonRetryPlanExhausted, dead[0].DeadLetter.Reason)
}
