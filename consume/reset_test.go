package consume

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// brokerReset moves ref's cursor to at through minipulsar's admin API, as
// the console does through pulsaradmin.
func brokerReset(t *testing.T, e *env, ref SubscriptionRef, at time.Time) func(context.Context) error {
	return func(ctx context.Context) error {
		url := fmt.Sprintf("%s/admin/v2/persistent/%s/%s/%s/subscription/%s/resetcursor/%d", e.broker.AdminURL(),
			ref.Tenant, ref.Namespace, ref.Topic, ref.Subscription, at.UnixMilli())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		if res.StatusCode/100 != 2 {
			return fmt.Errorf("resetcursor: HTTP %d", res.StatusCode)
		}
		return nil
	}
}

// TestResetCursorReplaysAcrossReplicas: replica B received six messages
// and acknowledged four (two stay in flight); a reset asked of replica A
// tells B to drop what it holds, moves the broker's cursor and clears the
// delivery state: all six are delivered again (to A), with delivery 1,
// and B's ackIds from before the reset are ignored. An unregistered
// subscription is refused before anything moves.
func TestResetCursorReplaysAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	a, b := e.node(), e.node()
	ref := newRef("replay")
	a.put(ref, SubscriptionSpec{InitialPosition: PositionEarliest})
	before := time.Now().Add(-time.Second)
	sent := []testMsg{newMsg("A"), newMsg("B"), newMsg("A"), newMsg(), newMsg("C"), newMsg("A")}
	produce(t, e.client, ref.TopicName(), sent)

	got := b.receiveUntil(ref, 6, 10*time.Second)
	require.Len(t, got, 6)
	require.ElementsMatch(t, msgUIDs(sent), uids(got))
	require.Equal(t, AckResponse{Acked: 4}, b.ack(ref, got[:4]...))

	// B reports what it holds (StatsInterval 200ms): A finds it there.
	require.Eventually(t, func() bool {
		keys, err := e.rdb.HKeys(context.Background(), a.svc.heldKey(ref.Path())).Result()
		return err == nil && slices.Contains(keys, bindingHex(b.svc.node))
	}, 5*time.Second, 50*time.Millisecond)

	moved := false
	_, err := a.svc.ResetCursor(context.Background(), newRef("nobody"), before, func(context.Context) error { moved = true; return nil })
	require.Equal(t, CodeSubscriptionNotFound, AsError(err).Code)
	require.False(t, moved, "nothing moves for an unregistered subscription")

	res, err := a.svc.ResetCursor(context.Background(), ref, before, brokerReset(t, e, ref, before))
	require.NoError(t, err)
	require.Equal(t, 1, res.NotifiedReplicas)
	require.GreaterOrEqual(t, res.ClearedStates, int64(6))
	require.Eventually(t, func() bool { return b.svc.existingEngine(ref.Path()) == nil }, 5*time.Second, 20*time.Millisecond,
		"B dropped its engine")

	again := a.receiveUntil(ref, 6, 15*time.Second)
	require.ElementsMatch(t, msgUIDs(sent), uids(again), "every message since the reset time, acknowledged or not")
	for _, m := range again {
		require.Zero(t, m.RedeliveryCount, "delivered as new")
	}
	require.Equal(t, AckResponse{Ignored: 2}, b.ack(ref, got[4:]...), "ackIds from before the reset are stale")
	require.Equal(t, NackResponse{Ignored: 1}, b.nack(ref, "", got[5]), "for a nack too")
	require.Equal(t, AckResponse{Acked: 6}, a.ack(ref, again...))
	require.Empty(t, a.receive(ref, 10, 300), "each once")
}
