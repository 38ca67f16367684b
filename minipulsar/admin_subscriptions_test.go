package minipulsar_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

func TestAdminSubscriptions(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	subs := adm.Subscriptions()
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "subs")
	p := producerOf(t, c, "subs", false, pulsar.ProducerOptions{})
	ids := sendAll(t, p, payloads(5, "m")...)

	require.NoError(t, subs.Create(tn, "early", utils.Earliest))
	require.NoError(t, subs.Create(tn, "late", utils.Latest))
	require.Equal(t, http.StatusConflict, adminStatus(subs.Create(tn, "late", utils.Latest)))
	backlog := func(sub string) int64 {
		t.Helper()
		n, err := s.Backlog("subs", sub)
		require.NoError(t, err)
		return n
	}
	require.EqualValues(t, 5, backlog("early"))
	require.EqualValues(t, 0, backlog("late"))
	list, err := subs.List(tn)
	require.NoError(t, err)
	require.Equal(t, []string{"early", "late"}, list)

	require.NoError(t, subs.SkipMessages(tn, "early", 2))
	require.EqualValues(t, 3, backlog("early"))
	peeked, err := subs.PeekMessages(tn, "early", 1)
	require.NoError(t, err)
	require.Equal(t, []string{"m-2"}, payloadStrings(peeked), "skipping moves the cursor")
	require.NoError(t, subs.ClearBacklog(tn, "early"))
	require.EqualValues(t, 0, backlog("early"))

	require.NoError(t, subs.ResetCursorToMessageID(tn, "early", utils.MessageID{LedgerID: ids[1].LedgerID(), EntryID: ids[1].EntryID(), PartitionIndex: -1}))
	require.EqualValues(t, 4, backlog("early"), "reset to an id includes it")
	require.NoError(t, subs.ResetCursorToMessageID(tn, "early", utils.Latest))
	require.EqualValues(t, 0, backlog("early"))
	require.NoError(t, subs.ResetCursorToMessageID(tn, "early", utils.Earliest))
	require.EqualValues(t, 5, backlog("early"))

	stored, err := s.Messages("subs")
	require.NoError(t, err)
	ts := stored[3].PublishTime.UnixMilli()
	wantBacklog := 0
	for _, m := range stored {
		if m.PublishTime.UnixMilli() >= ts {
			wantBacklog++
		}
	}
	require.NoError(t, subs.ResetCursorToTimestamp(tn, "late", ts))
	require.EqualValues(t, wantBacklog, backlog("late"), "reset by time starts at the first message published at or after it")

	// Names are escaped twice by pulsaradmin and decoded twice here.
	odd := "we ird/name%41+é"
	require.NoError(t, subs.Create(tn, odd, utils.Earliest))
	list, err = subs.List(tn)
	require.NoError(t, err)
	require.Contains(t, list, odd)
	names, err := s.Subscriptions("subs")
	require.NoError(t, err)
	require.Contains(t, names, odd)
	require.NoError(t, subs.SkipMessages(tn, odd, 1))
	require.EqualValues(t, 4, backlog(odd))
	require.NoError(t, subs.Delete(tn, odd))

	require.NoError(t, subs.Delete(tn, "late"))
	require.Equal(t, http.StatusNotFound, adminStatus(subs.Delete(tn, "late")))
	list, err = subs.List(tn)
	require.NoError(t, err)
	require.Equal(t, []string{"early"}, list)

	// Creating a subscription on a topic that does not exist creates it.
	require.NoError(t, subs.Create(tname(t, "made-by-sub"), "s", utils.Earliest))
	require.Contains(t, s.Topics(), "persistent://public/default/made-by-sub")
}

func TestAdminSubscriptionWithConsumers(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	subs := adm.Subscriptions()
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "busy")
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "busy", SubscriptionName: "s", Type: pulsar.Exclusive})
	require.NoError(t, err)
	defer cons.Close()
	p := producerOf(t, c, "busy", false, pulsar.ProducerOptions{})
	sendAll(t, p, payloads(5, "m")...)
	for i, m := range receiveN(t, cons, 5) {
		require.Equal(t, fmt.Sprintf("m-%d", i), string(m.Payload()))
		require.NoError(t, cons.Ack(m))
	}
	eventually(t, func(a *assertT) {
		n, err := s.Backlog("busy", "s")
		require.NoError(a, err)
		require.Zero(a, n)
	})

	// A reset disconnects the consumer, which resumes from the new position.
	require.NoError(t, subs.ResetCursorToMessageID(tn, "s", utils.Earliest))
	for i, m := range receiveN(t, cons, 5) {
		require.Equal(t, fmt.Sprintf("m-%d", i), string(m.Payload()), "redelivered from the start after the reset")
		require.NoError(t, cons.Ack(m))
	}

	require.Equal(t, http.StatusPreconditionFailed, adminStatus(subs.Delete(tn, "s")), "a subscription with consumers needs force")
	require.NoError(t, subs.ForceDelete(tn, "s"))
	// The consumer is disconnected; when it comes back it subscribes afresh
	// (at Latest, its initial position), as on Pulsar.
	eventually(t, func(a *assertT) {
		st, err := adm.Topics().GetStats(tn)
		require.NoError(a, err)
		require.Len(a, st.Subscriptions["s"].Consumers, 1)
		require.Zero(a, st.Subscriptions["s"].MsgBacklog)
	})
	_, err = p.Send(ctxOf(t), &pulsar.ProducerMessage{Payload: []byte("after")})
	require.NoError(t, err)
	m := receiveN(t, cons, 1)[0]
	require.Equal(t, "after", string(m.Payload()))
}

func TestAdminSkipInsideBatch(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "skipbatch")
	require.NoError(t, adm.Subscriptions().Create(tn, "s", utils.Earliest))
	p := producerOf(t, c, "skipbatch", true, pulsar.ProducerOptions{})
	ids := sendAll(t, p, payloads(10, "b")...)
	require.Equal(t, ids[0].EntryID(), ids[9].EntryID(), "one batch entry")

	require.NoError(t, adm.Subscriptions().SkipMessages(tn, "s", 3))
	n, err := s.Backlog("skipbatch", "s")
	require.NoError(t, err)
	require.EqualValues(t, 7, n, "skip counts messages, not entries")

	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "skipbatch", SubscriptionName: "s", Type: pulsar.Exclusive})
	require.NoError(t, err)
	defer cons.Close()
	for i, m := range receiveN(t, cons, 7) {
		require.Equal(t, fmt.Sprintf("b-%d", i+3), string(m.Payload()), "the skipped messages of the batch are not delivered")
	}
}
