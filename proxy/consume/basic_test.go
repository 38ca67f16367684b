package consume

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReceiveAckOneReplica(t *testing.T) {
	e := newEnv(t)
	a := e.node()
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_1 || PAY_2"})

	msgs := []testMsg{newMsg("PAY_1"), newMsg("PAY_3"), newMsg("PAY_2", "X"), newMsg()}
	msgs[0].props = map[string]string{"order": "42"}
	msgs[0].key = "k1"
	produce(t, e.client, ref.TopicName(), msgs)

	got := a.receiveUntil(ref, 2, 5*time.Second)
	require.Equal(t, msgUIDs([]testMsg{msgs[0], msgs[2]}), uids(got))
	for _, m := range got {
		require.NotEmpty(t, m.AckID)
		require.NotNil(t, m.Payload)
		require.Equal(t, "payload "+m.UID, *m.Payload)
		require.Zero(t, m.RedeliveryCount)
		require.NotEmpty(t, m.PublishTime)
		if m.UID == msgs[0].uid {
			require.Equal(t, map[string]string{"order": "42"}, m.Properties)
			require.Equal(t, "k1", m.Key)
			require.Equal(t, []string{"PAY_1"}, m.Tags)
		}
	}
	require.Empty(t, a.receive(ref, 10, 300))
	require.Equal(t, AckResponse{Acked: 2}, a.ack(ref, got...))
	require.Equal(t, AckResponse{Ignored: 2}, a.ack(ref, got...))
	e.backlogZero(e.broker, ref)

	require.Eventually(t, func() bool {
		st := a.stats(ref)
		return st.Totals.Acked == 2
	}, 5*time.Second, 50*time.Millisecond)
	st := a.stats(ref)
	require.EqualValues(t, 2, st.Totals.Delivered)
	require.EqualValues(t, 2, st.Totals.Filtered)
	require.EqualValues(t, 1, st.Tags["PAY_1"].Delivered)
	require.EqualValues(t, 1, st.Tags["PAY_3"].Filtered)
	require.EqualValues(t, 1, st.Tags[TagNone].Filtered)

	var sub Subscription
	code, _ := a.do(http.MethodGet, subPath(ref), nil, &sub)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "PAY_1 || PAY_2", sub.TagFilter)
	require.Equal(t, TypeShared, sub.Type)
	require.Equal(t, "30s", sub.AckTimeout)
	require.Equal(t, 16, sub.MaxDeliveries)
	require.Equal(t, ref.Tenant+"/"+ref.Namespace+"/"+ref.Topic+"-sub-DLQ", sub.DeadLetterTopic)
}
