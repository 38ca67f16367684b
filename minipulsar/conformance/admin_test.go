package conformance

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/require"
)

var publicDefault = func() utils.NameSpaceName {
	ns, err := utils.GetNameSpaceName("public", "default")
	if err != nil {
		panic(err)
	}
	return *ns
}()

// listTopics returns the partitioned and non-partitioned topics of
// public/default.
func listTopics(t *testing.T, admin pulsaradmin.Client) (partitioned, nonPartitioned []string) {
	t.Helper()
	partitioned, nonPartitioned, err := admin.Topics().List(publicDefault)
	require.NoError(t, err)
	return partitioned, nonPartitioned
}

// TestAdminTopics: topics and partitioned topics are created, listed,
// described and deleted through pulsaradmin.
func TestAdminTopics(t *testing.T) {
	_, adminURL := target(t)
	admin := newAdmin(t, adminURL)

	t.Run("non-partitioned", func(t *testing.T) {
		topic := newTopic(t)
		tn := adminTopic(t, topic)
		require.NoError(t, admin.Topics().Create(tn, 0))
		_, plain := listTopics(t, admin)
		require.Contains(t, plain, topic)
		md, err := admin.Topics().GetMetadata(tn)
		require.NoError(t, err)
		require.Equal(t, 0, md.Partitions)
		require.Error(t, admin.Topics().Create(tn, 0), "creating an existing topic")

		require.NoError(t, admin.Topics().Delete(tn, true, true))
		_, plain = listTopics(t, admin)
		require.NotContains(t, plain, topic)
	})

	t.Run("partitioned", func(t *testing.T) {
		topic := newTopic(t)
		tn := adminTopic(t, topic)
		require.NoError(t, admin.Topics().Create(tn, 3))
		partitioned, plain := listTopics(t, admin)
		require.Contains(t, partitioned, topic)
		require.NotContains(t, plain, topic, "a partitioned topic is not listed as a plain one")
		md, err := admin.Topics().GetMetadata(tn)
		require.NoError(t, err)
		require.Equal(t, 3, md.Partitions)
		require.Error(t, admin.Topics().Create(tn, 3), "creating an existing partitioned topic")

		require.NoError(t, admin.Topics().Delete(tn, true, false))
		partitioned, _ = listTopics(t, admin)
		require.NotContains(t, partitioned, topic)
	})
}

// TestAdminTopicAutoCreation: a topic a producer created is listed, and is
// gone from the list once deleted.
func TestAdminTopicAutoCreation(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	sendN(t, p, 0, 1)
	_, plain := listTopics(t, admin)
	require.Contains(t, plain, topic)
	p.Close()
	require.NoError(t, admin.Topics().Delete(adminTopic(t, topic), true, true))
	_, plain = listTopics(t, admin)
	require.NotContains(t, plain, topic)
}

// TestAdminStats: topic stats show the producers, each subscription's
// backlog and type, and its consumers.
func TestAdminStats(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	tn := adminTopic(t, topic)

	cons := subscribe(t, c, pulsar.ConsumerOptions{
		Topic:             topic,
		SubscriptionName:  "busy",
		Type:              pulsar.Shared,
		Name:              "consumer-1",
		AckWithResponse:   true,
		ReceiverQueueSize: 20,
	})
	idle := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "idle", Type: pulsar.Exclusive})
	idle.Close() // an idle subscription with no consumer keeps its backlog
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: uniqueName(t), DisableBatching: true})
	sendN(t, p, 0, 10)

	msgs := receiveN(t, cons, 4)
	ackAll(t, cons, msgs)

	eventually(t, 5*time.Second, func() error {
		st, err := admin.Topics().GetStats(tn)
		if err != nil {
			return err
		}
		busy, ok := st.Subscriptions["busy"]
		if !ok {
			return fmt.Errorf("no subscription busy in %+v", st.Subscriptions)
		}
		idle, ok := st.Subscriptions["idle"]
		if !ok {
			return fmt.Errorf("no subscription idle in %+v", st.Subscriptions)
		}
		switch {
		case busy.MsgBacklog != 6:
			return fmt.Errorf("busy backlog %d, want 6", busy.MsgBacklog)
		case idle.MsgBacklog != 10:
			return fmt.Errorf("idle backlog %d, want 10", idle.MsgBacklog)
		case busy.SubType != "Shared":
			return fmt.Errorf("busy type %q", busy.SubType)
		case len(busy.Consumers) != 1 || busy.Consumers[0].ConsumerName != "consumer-1":
			return fmt.Errorf("busy consumers %+v", busy.Consumers)
		case len(idle.Consumers) != 0:
			return fmt.Errorf("idle consumers %+v", idle.Consumers)
		case !busy.IsDurable:
			return fmt.Errorf("busy not durable")
		case st.MsgCounterIn != 10:
			return fmt.Errorf("msgInCounter %d, want 10", st.MsgCounterIn)
		case len(st.Publishers) != 1 || st.Publishers[0].ProducerName != p.Name():
			return fmt.Errorf("publishers %+v, want %s", st.Publishers, p.Name())
		}
		return nil
	})

	cons.Close()
	eventually(t, 5*time.Second, func() error {
		st, err := admin.Topics().GetStats(tn)
		if err == nil && len(st.Subscriptions["busy"].Consumers) != 0 {
			err = fmt.Errorf("consumers after close: %+v", st.Subscriptions["busy"].Consumers)
		}
		return err
	})
}

// TestStatsClientVersionAndMetadata: topic stats show, for each producer and
// consumer, the client version its connection announced in CONNECT and the
// metadata properties it registered with.
func TestStatsClientVersionAndMetadata(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Name: "cons-1",
		Properties: map[string]string{"team": "billing"}})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Properties: map[string]string{"app": "checkout"}})

	st, err := admin.Topics().GetStats(adminTopic(t, topic))
	require.NoError(t, err)
	require.Len(t, st.Publishers, 1)
	pub := st.Publishers[0]
	require.Equal(t, p.Name(), pub.ProducerName)
	require.True(t, strings.HasPrefix(pub.ClientVersion, "Pulsar-Go-"), "publisher clientVersion %q", pub.ClientVersion)
	require.Equal(t, "checkout", pub.Metadata["app"])
	require.Len(t, st.Subscriptions["sub"].Consumers, 1)
	cs := st.Subscriptions["sub"].Consumers[0]
	require.True(t, strings.HasPrefix(cs.ClientVersion, "Pulsar-Go-"), "consumer clientVersion %q", cs.ClientVersion)
	require.Equal(t, "billing", cs.Metadata["team"])
}

// TestAdminSubscriptions: subscriptions are created at a position, listed,
// reset by id and by time, skipped, cleared and deleted; consumers then
// read from where the admin API put the cursor.
func TestAdminSubscriptions(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	tn := adminTopic(t, topic)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	ids, mid := sendAroundInstant(t, p)
	subs := admin.Subscriptions()

	backlog := func(sub string) int64 {
		t.Helper()
		st, err := admin.Topics().GetStats(tn)
		require.NoError(t, err)
		s, ok := st.Subscriptions[sub]
		require.True(t, ok, "no subscription %s", sub)
		return s.MsgBacklog
	}
	// firstAfterReset subscribes, takes one message and leaves.
	firstAfterReset := func(sub string) string {
		t.Helper()
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub})
		require.NoError(t, err)
		defer cons.Close()
		return string(receive(t, cons).Payload())
	}

	require.NoError(t, subs.Create(tn, "from-earliest", utils.Earliest))
	require.NoError(t, subs.Create(tn, "from-latest", utils.Latest))
	list, err := subs.List(tn)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"from-earliest", "from-latest"}, list)
	require.Equal(t, int64(10), backlog("from-earliest"))
	require.Equal(t, int64(0), backlog("from-latest"))

	t.Run("reset by message id", func(t *testing.T) {
		require.NoError(t, subs.ResetCursorToMessageID(tn, "from-latest", utils.MessageID{LedgerID: ids[3].LedgerID(), EntryID: ids[3].EntryID(), PartitionIndex: -1}))
		require.Equal(t, int64(7), backlog("from-latest"), "reset to message 3: 3..9 remain")
		require.Equal(t, "msg-0003", firstAfterReset("from-latest"))
	})

	t.Run("reset by time", func(t *testing.T) {
		require.NoError(t, subs.ResetCursorToTimestamp(tn, "from-latest", mid.UnixMilli()))
		require.Equal(t, int64(5), backlog("from-latest"), "reset to the pause: 5..9 remain")
		require.Equal(t, "msg-0005", firstAfterReset("from-latest"))
	})

	t.Run("skip", func(t *testing.T) {
		require.NoError(t, subs.SkipMessages(tn, "from-earliest", 4))
		require.Equal(t, int64(6), backlog("from-earliest"))
		require.Equal(t, "msg-0004", firstAfterReset("from-earliest"))
	})

	t.Run("peek", func(t *testing.T) {
		peeked, err := subs.PeekMessages(tn, "from-earliest", 3)
		require.NoError(t, err)
		require.Len(t, peeked, 3)
		for i, m := range peeked {
			require.Equal(t, string(payload(4+i)), string(m.Payload))
			require.Equal(t, ids[4+i].EntryID(), m.MessageID.EntryID)
		}
		require.Equal(t, int64(6), backlog("from-earliest"), "peeking consumes nothing")
	})

	t.Run("skip all", func(t *testing.T) {
		require.NoError(t, subs.ClearBacklog(tn, "from-earliest"))
		require.Equal(t, int64(0), backlog("from-earliest"))
	})

	t.Run("delete", func(t *testing.T) {
		require.NoError(t, subs.Delete(tn, "from-earliest"))
		list, err := subs.List(tn)
		require.NoError(t, err)
		require.Equal(t, []string{"from-latest"}, list)
		require.Error(t, subs.Delete(tn, "no-such-subscription"))
	})
}

// TestAdminMessages: the last message id and single messages are read
// through the admin API, batched entries as their individual messages.
func TestAdminMessages(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	tn := adminTopic(t, topic)

	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	id, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{
		Payload:    []byte("single"),
		Properties: map[string]string{"colour": "blue"},
	})
	require.NoError(t, err)

	last, err := admin.Topics().GetLastMessageID(tn)
	require.NoError(t, err)
	require.Equal(t, id.LedgerID(), last.LedgerID)
	require.Equal(t, id.EntryID(), last.EntryID)

	//nolint:staticcheck // the single-message call older tools still use
	m, err := admin.Subscriptions().GetMessageByID(tn, id.LedgerID(), id.EntryID())
	require.NoError(t, err)
	require.Equal(t, "single", string(m.Payload))
	require.Equal(t, "blue", m.Properties["colour"])
	require.Equal(t, id.EntryID(), m.MessageID.EntryID)

	batched := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 3, BatchingMaxPublishDelay: time.Second})
	ids := sendBatch(t, batched, 0, 3)
	require.True(t, sameEntry(ids[0], ids[2]))
	msgs, err := admin.Subscriptions().GetMessagesByID(tn, ids[0].LedgerID(), ids[0].EntryID())
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	for i, m := range msgs {
		require.Equal(t, string(payload(i)), string(m.Payload))
		require.Equal(t, i, m.MessageID.BatchIndex)
	}

	last, err = admin.Topics().GetLastMessageID(tn)
	require.NoError(t, err)
	require.Equal(t, ids[2].EntryID(), last.EntryID)

	//nolint:staticcheck // the single-message call older tools still use
	_, err = admin.Subscriptions().GetMessageByID(tn, ids[2].LedgerID(), ids[2].EntryID()+100)
	require.Error(t, err, "a message that does not exist")
}

// TestUnsubscribe: unsubscribing removes the subscription and its backlog.
func TestUnsubscribe(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	tn := adminTopic(t, topic)

	keep := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "keep"})
	gone, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "gone"})
	require.NoError(t, err)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	sendN(t, p, 0, 5)
	receiveN(t, keep, 5)

	require.NoError(t, gone.Unsubscribe())
	unsubscribed.Add(1)
	gone.Close()
	list, err := admin.Subscriptions().List(tn)
	require.NoError(t, err)
	require.Equal(t, []string{"keep"}, list)
	st, err := admin.Topics().GetStats(tn)
	require.NoError(t, err)
	require.NotContains(t, st.Subscriptions, "gone")

	// Subscribing again under the name starts a new subscription: the
	// old backlog is gone.
	again := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "gone"})
	sendN(t, p, 5, 1)
	require.Equal(t, "msg-0005", string(receive(t, again).Payload()))
}

// TestHTTPLookup: a client given the admin URL (http://) looks topics up
// over HTTP and then produces and consumes over the binary protocol.
func TestHTTPLookup(t *testing.T) {
	_, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, adminURL)

	topic := newTopic(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	sendN(t, p, 0, 3)
	require.Equal(t, wantPayloads(0, 3), payloads(receiveN(t, cons, 3)))

	partitioned := newTopic(t)
	require.NoError(t, admin.Topics().Create(adminTopic(t, partitioned), 2))
	parts, err := c.TopicPartitions(partitioned)
	require.NoError(t, err)
	require.Len(t, parts, 2)
	pc := subscribe(t, c, pulsar.ConsumerOptions{Topic: partitioned, SubscriptionName: "sub"})
	pp := newProducer(t, c, pulsar.ProducerOptions{Topic: partitioned})
	for i := range 6 {
		_, err := pp.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: payload(i), Key: fmt.Sprint(i)})
		require.NoError(t, err)
	}
	got := payloads(receiveN(t, pc, 6))
	slices.Sort(got)
	require.Equal(t, wantPayloads(0, 6), got)

	// Short names work over HTTP lookup too.
	short := uniqueName(t)
	sp := newProducer(t, c, pulsar.ProducerOptions{Topic: short})
	sendN(t, sp, 0, 1)
	lookup, err := admin.Topics().Lookup(adminTopic(t, "persistent://public/default/"+short))
	require.NoError(t, err)
	require.NotEmpty(t, lookup.BrokerURL)
}

// TestAdminPeekAfterAcks: peek counts positions over the entries a
// subscription has not acknowledged, so an ack shifts the entries behind
// it up a place; the subscription's cursor in internalStats changes with
// every ack and not with new messages. The sidecar's per-tag backlog scan
// depends on both.
func TestAdminPeekAfterAcks(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	tn := adminTopic(t, topic)

	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Type: pulsar.Shared, AckWithResponse: true})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	sendN(t, p, 0, 4)
	msgs := receiveN(t, cons, 4)

	cursor := func() string {
		t.Helper()
		is, err := admin.Topics().GetInternalStats(tn)
		require.NoError(t, err)
		cur, ok := is.Cursors["sub"]
		require.True(t, ok, "no cursor sub in %+v", is.Cursors)
		return cur.MarkDeletePosition + " " + cur.IndividuallyDeletedMessages
	}
	peek := func(n int) []string {
		t.Helper()
		got, err := admin.Subscriptions().PeekMessages(tn, "sub", n)
		require.NoError(t, err)
		out := make([]string, len(got))
		for i, m := range got {
			out[i] = string(m.Payload)
		}
		return out
	}
	pl := func(is ...int) []string {
		out := make([]string, len(is))
		for i, n := range is {
			out[i] = string(payload(n))
		}
		return out
	}
	start := cursor()
	require.Equal(t, pl(0, 1, 2, 3), peek(4))

	// An individual ack in the middle: position 2 is now the third message.
	require.NoError(t, cons.Ack(msgs[1]))
	middle := cursor()
	require.NotEqual(t, start, middle)
	require.Equal(t, pl(0, 2, 3), peek(3))

	// A new message changes neither.
	sendN(t, p, 4, 1)
	receiveN(t, cons, 1)
	require.Equal(t, middle, cursor())
	require.Equal(t, pl(0, 2, 3, 4), peek(4))

	// Acking the head moves the mark-delete position past both.
	require.NoError(t, cons.Ack(msgs[0]))
	head := cursor()
	require.NotEqual(t, middle, head)
	require.NotEqual(t, start, head)
	require.Equal(t, pl(2, 3, 4), peek(3))
}
