package consume

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// Messages that landed on the disaster-recovery cluster reach the same
// subscription; a uid on both clusters (a failover after a timeout) is
// delivered once.
func TestDisasterRecoveryClusterDelivery(t *testing.T) {
	e := newEnv(t).withDR()
	a, b := e.node(), e.node()
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_1"})

	p1, p2, both, d1, d2 := newMsg("PAY_1"), newMsg("PAY_2"), newMsg("PAY_1"), newMsg("PAY_1"), newMsg("PAY_2")
	produce(t, e.client, ref.TopicName(), []testMsg{p1, p2, both})
	produce(t, newClient(t, e.dr), ref.TopicName(), []testMsg{d1, both, d2})

	var got []Message
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		batch := a.receive(ref, 10, 200)
		got = append(got, batch...)
		if len(batch) > 0 {
			b.ack(ref, batch...)
		}
	}
	require.Equal(t, msgUIDs([]testMsg{p1, both, d1}), uids(got))
	clusters := map[string]string{}
	for _, m := range got {
		clusters[m.UID] = m.Cluster
	}
	require.Equal(t, "primary", clusters[p1.uid])
	require.Equal(t, "dr", clusters[d1.uid])
	require.Contains(t, []string{"primary", "dr"}, clusters[both.uid])
	require.Empty(t, a.receive(ref, 10, 500), "the second copy of a uid must be dropped")

	e.backlogZero(e.broker, ref)
	e.backlogZero(e.dr, ref)
	require.Eventually(t, func() bool {
		st := a.stats(ref)
		return st.Totals.Duplicates == 1 && st.Totals.Acked == 3 && st.Totals.Filtered == 2
	}, 5*time.Second, 50*time.Millisecond, "%+v", a.stats(ref).Totals)
}

// Copies of one uid (a spool replay, a producer retry) are dropped within
// the dedup window, whether the first copy is still in flight or already
// acknowledged; after the window a copy is delivered again.
func TestDuplicatesDroppedWithinWindow(t *testing.T) {
	e := newEnv(t)
	clk := minipulsar.NewFakeClock(time.Now())
	a := e.node(fakeClock(clk), func(o *Options) { o.State.DedupWindow = 5 * time.Minute })
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{AckTimeout: "1m"})

	m := newMsg("PAY_1")
	other := newMsg("PAY_1")
	produce(t, e.client, ref.TopicName(), []testMsg{m, m, other})
	got := a.receiveUntil(ref, 2, 5*time.Second)
	require.Equal(t, msgUIDs([]testMsg{m, other}), uids(got))
	require.Empty(t, a.receive(ref, 10, 300))

	// Another copy while the first is in flight, then after its ack.
	produce(t, e.client, ref.TopicName(), []testMsg{m})
	require.Empty(t, a.receive(ref, 10, 300))
	a.ack(ref, got...)
	produce(t, e.client, ref.TopicName(), []testMsg{m})
	require.Empty(t, a.receive(ref, 10, 300))
	e.backlogZero(e.broker, ref)
	require.Eventually(t, func() bool { return a.stats(ref).Totals.Duplicates == 3 }, 5*time.Second, 50*time.Millisecond)

	// The delivery state lives for the window on Redis's own clock;
	// deleting it stands in for waiting that long. Past the window the uid
	// is forgotten.
	// The uid's state is a field of the subscription's current bucket (or
	// the previous one, across a bucket edge), which lives until two
	// windows and a minute after it began, on Redis's clock.
	ctx := context.Background()
	buckets, err := e.rdb.Keys(ctx, a.svc.states.root(a.svc.states.space(ref.binding(), 30*time.Second))+"*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, buckets)
	found := 0
	for _, k := range buckets {
		ok, err := e.rdb.HExists(ctx, k, m.uid).Result()
		require.NoError(t, err)
		if !ok {
			continue
		}
		found++
		ttl, err := e.rdb.PTTL(ctx, k).Result()
		require.NoError(t, err)
		require.GreaterOrEqual(t, ttl, time.Minute)
		require.LessOrEqual(t, ttl, 11*time.Minute)
		require.NoError(t, e.rdb.HDel(ctx, k, m.uid).Err())
	}
	require.NotZero(t, found, "the state is in a bucket")
	clk.Advance(6 * time.Minute)
	produce(t, e.client, ref.TopicName(), []testMsg{m})
	again := a.receiveUntil(ref, 1, 5*time.Second)
	require.Equal(t, []string{m.uid}, uids(again))
	require.Zero(t, again[0].RedeliveryCount)
	a.ack(ref, again...)
}

func TestKeyShared(t *testing.T) {
	e := newEnv(t)
	a, b := e.node(), e.node()
	ref := newRef("ordered")
	sub := a.put(ref, SubscriptionSpec{Type: "key_shared"})
	require.Equal(t, TypeKeyShared, sub.Type)
	var msgs []testMsg
	for i := range 40 {
		m := newMsg("PAY_1")
		m.key = []string{"k1", "k2", "k3", "k4"}[i%4]
		msgs = append(msgs, m)
	}
	produce(t, e.client, ref.TopicName(), msgs)
	var got []Message
	deadline := time.Now().Add(10 * time.Second)
	for turn := 0; len(got) < len(msgs) && time.Now().Before(deadline); turn++ {
		n := []*node{a, b}[turn%2]
		batch := n.receive(ref, 100, 100)
		got = append(got, batch...)
		if len(batch) > 0 {
			n.ack(ref, batch...)
		}
	}
	require.Equal(t, msgUIDs(msgs), uids(got))
	// Per key, in production order.
	pos := map[string]int{}
	for i, m := range msgs {
		pos[m.uid] = i
	}
	last := map[string]int{}
	for _, m := range got {
		if p, ok := last[m.Key]; ok {
			require.Less(t, p, pos[m.UID], "key %s out of order", m.Key)
		}
		last[m.Key] = pos[m.UID]
	}
	e.backlogZero(e.broker, ref)
}
