package minipulsar_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

func TestAdminStats(t *testing.T) {
	clock := minipulsar.NewFakeClock(time.Now())
	s := minipulsar.RunOptionsT(t, minipulsar.Options{Clock: clock})
	adm := adminOf(t, s)
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "stats")

	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "stats", SubscriptionName: "sub", Name: "cons-1", Type: pulsar.Shared})
	require.NoError(t, err)
	defer cons.Close()
	p := producerOf(t, c, "stats", false, pulsar.ProducerOptions{Name: "prod-1"})
	msgs := payloads(10, strings.Repeat("x", 100))
	sendAll(t, p, msgs...)
	got := receiveN(t, cons, 10)
	for _, m := range got[:4] {
		require.NoError(t, cons.Ack(m))
	}

	eventually(t, func(a *assertT) {
		st, err := adm.Topics().GetStats(tn)
		require.NoError(a, err)
		sub, ok := st.Subscriptions["sub"]
		require.True(a, ok)
		require.EqualValues(a, 6, sub.MsgBacklog)
		require.EqualValues(a, 6, sub.UnAckedMessages)
	})
	st, err := adm.Topics().GetStats(tn)
	require.NoError(t, err)
	require.EqualValues(t, 10, st.MsgCounterIn)
	require.EqualValues(t, 10, st.MsgCounterOut)
	require.Greater(t, st.StorageSize, int64(10*100))
	require.Greater(t, st.BacklogSize, int64(6*100))
	require.Equal(t, "Disabled", st.DeDuplicationStatus)
	require.Len(t, st.Publishers, 1)
	require.Equal(t, "prod-1", st.Publishers[0].ProducerName)
	require.EqualValues(t, "Shared", st.Publishers[0].AccessModel)
	require.NotEmpty(t, st.Publishers[0].Address)
	require.NotEmpty(t, st.Publishers[0].ConnectedSince)
	sub := st.Subscriptions["sub"]
	require.Equal(t, "Shared", sub.SubType)
	require.True(t, sub.IsDurable)
	require.EqualValues(t, 6, sub.MsgBacklogNoDelayed)
	require.Zero(t, sub.MsgDelayed)
	require.EqualValues(t, 10, sub.MsgOutCounter)
	require.Len(t, sub.Consumers, 1)
	cs := sub.Consumers[0]
	require.Equal(t, "cons-1", cs.ConsumerName)
	require.Equal(t, 6, cs.UnAckedMessages)
	require.EqualValues(t, 10, cs.MsgOutCounter)
	require.Positive(t, cs.AvailablePermits)
	require.NotEmpty(t, cs.Address)
	require.Zero(t, st.MsgRateIn, "the first sample has no rate")

	// Rates: 10 more messages in and out over 10 s of the broker's clock.
	sendAll(t, p, payloads(10, "more")...)
	receiveN(t, cons, 10)
	eventually(t, func(a *assertT) {
		st, err := adm.Topics().GetStats(tn)
		require.NoError(a, err)
		require.EqualValues(a, 20, st.MsgCounterOut)
	})
	clock.Advance(10 * time.Second)
	st, err = adm.Topics().GetStats(tn)
	require.NoError(t, err)
	require.InDelta(t, 1.0, st.MsgRateIn, 1e-9)
	require.InDelta(t, 1.0, st.MsgRateOut, 1e-9)
	require.InDelta(t, 1.0, st.Subscriptions["sub"].MsgRateOut, 1e-9)
	require.InDelta(t, 1.0, st.Publishers[0].MsgRateIn, 1e-9)
	require.Positive(t, st.MsgThroughputIn)

	// A delayed message is in the backlog but not in msgBacklogNoDelayed.
	_, err = p.Send(ctxOf(t), &pulsar.ProducerMessage{Payload: []byte("later"), DeliverAfter: time.Hour})
	require.NoError(t, err)
	eventually(t, func(a *assertT) {
		st, err := adm.Topics().GetStats(tn)
		require.NoError(a, err)
		sub := st.Subscriptions["sub"]
		require.EqualValues(a, 1, sub.MsgDelayed)
		require.Equal(a, sub.MsgBacklog-1, sub.MsgBacklogNoDelayed)
	})

	is, err := adm.Topics().GetInternalStats(tn)
	require.NoError(t, err)
	require.EqualValues(t, 21, is.EntriesAddedCounter)
	require.EqualValues(t, 21, is.NumberOfEntries)
	require.Contains(t, is.Cursors, "sub")
	require.Regexp(t, `^\d+:\d+$`, is.Cursors["sub"].MarkDeletePosition)

	_, err = adm.Topics().GetStats(tname(t, "no-such-topic"))
	require.Equal(t, http.StatusNotFound, adminStatus(err))
}

func TestAdminPartitionedStats(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	tn := tname(t, "pstats")
	require.NoError(t, adm.Topics().Create(tn, 3))
	c := clientOf(t, s.ServiceURL())
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "pstats", SubscriptionName: "sub", Type: pulsar.Shared})
	require.NoError(t, err)
	defer cons.Close()
	p := producerOf(t, c, "pstats", false, pulsar.ProducerOptions{})
	msgs := payloads(30, "p")
	for i, m := range msgs {
		m.Key = strconv.Itoa(i)
	}
	sendAll(t, p, msgs...)

	st, err := adm.Topics().GetPartitionedStats(tn, true)
	require.NoError(t, err)
	require.Equal(t, 3, st.Metadata.Partitions)
	require.Len(t, st.Partitions, 3)
	var sum int64
	for name, ps := range st.Partitions {
		require.Contains(t, name, "pstats-partition-")
		sum += ps.MsgCounterIn
		require.Contains(t, ps.Subscriptions, "sub")
	}
	require.EqualValues(t, 30, sum)
	require.Len(t, st.Subscriptions["sub"].Consumers, 3, "one consumer per partition")
	require.Len(t, st.Publishers, 3, "one producer per partition")

	st, err = adm.Topics().GetPartitionedStats(tn, false)
	require.NoError(t, err)
	require.Empty(t, st.Partitions)

	_, err = adm.Topics().GetStats(tn)
	require.Equal(t, http.StatusNotFound, adminStatus(err), "a partitioned topic has no stats of its own")
	_, err = adm.Topics().GetPartitionedStats(tname(t, "nope"), true)
	require.Equal(t, http.StatusNotFound, adminStatus(err))
}
