package conformance

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConnect: the handshake completes and the broker answers a lookup.
func TestConnect(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	parts, err := c.TopicPartitions(topic)
	require.NoError(t, err)
	require.Equal(t, []string{topic}, parts, "a non-partitioned topic is its own only partition")
}

// TestKeepAlive: an idle connection stays up: the broker answers the
// client's PINGs, so the client does not give up on it after two silent
// keep-alive intervals. A reconnection would show as a new client address
// in the producer's stats.
func TestKeepAlive(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL, func(o *pulsar.ClientOptions) { o.KeepAliveInterval = 500 * time.Millisecond })
	topic := newTopic(t)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	address := func() (string, string) {
		st, err := admin.Topics().GetStats(adminTopic(t, topic))
		require.NoError(t, err)
		require.Len(t, st.Publishers, 1)
		require.Len(t, st.Subscriptions["sub"].Consumers, 1)
		return st.Publishers[0].Address, st.Subscriptions["sub"].Consumers[0].Address
	}
	p1, c1 := address()
	require.NotEmpty(t, p1, "producer address in stats")
	time.Sleep(2500 * time.Millisecond) // five keep-alive intervals of silence
	sendN(t, p, 0, 1)
	require.Equal(t, "msg-0000", string(receive(t, cons).Payload()))
	p2, c2 := address()
	require.Equal(t, p1, p2, "the producer reconnected: the idle connection was dropped")
	require.Equal(t, c1, c2, "the consumer reconnected: the idle connection was dropped")
}

// TestRoundTrip: everything a producer sets on a message comes back to the
// consumer unchanged.
func TestRoundTrip(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: uniqueName(t)})

	eventTime := time.UnixMilli(1_700_000_000_123)
	msg := &pulsar.ProducerMessage{
		Payload:     []byte("hello \x00 world"),
		Key:         "the-key",
		OrderingKey: "the-ordering-key",
		Properties:  map[string]string{"a": "1", "b": "two", "empty": ""},
		EventTime:   eventTime,
	}
	sentAt := time.Now().Truncate(time.Millisecond)
	id, err := p.Send(timeout(t, opTimeout), msg)
	require.NoError(t, err)
	sentDone := time.Now()

	got := receive(t, cons)
	require.NoError(t, cons.Ack(got))
	assert.Equal(t, msg.Payload, got.Payload())
	assert.Equal(t, msg.Key, got.Key())
	assert.Equal(t, msg.OrderingKey, got.OrderingKey())
	assert.Equal(t, msg.Properties, got.Properties())
	assert.True(t, eventTime.Equal(got.EventTime()), "event time %v, want %v", got.EventTime(), eventTime)
	assert.Equal(t, p.Name(), got.ProducerName())
	assert.Equal(t, topic, got.Topic())
	assert.Equal(t, uint32(0), got.RedeliveryCount())
	assert.True(t, sameEntry(id, got.ID()), "received id %v, send returned %v", got.ID(), id)
	assert.False(t, got.PublishTime().Before(sentAt) || got.PublishTime().After(sentDone),
		"publish time %v not within the Send call [%v, %v]", got.PublishTime(), sentAt, sentDone)

	// A message with nothing but a payload has no key, no properties and
	// no event time (the client reports a missing one as the Unix epoch).
	_, err = p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("bare")})
	require.NoError(t, err)
	bare := receive(t, cons)
	assert.Equal(t, "bare", string(bare.Payload()))
	assert.Empty(t, bare.Key())
	assert.Empty(t, bare.Properties())
	assert.Zero(t, bare.EventTime().UnixMilli(), "event time %v, want none", bare.EventTime())
}

// TestShortTopicNames: "x" means persistent://public/default/x and "t/n/x"
// means persistent://t/n/x, for producers, consumers and readers alike.
func TestShortTopicNames(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	local := uniqueName(t)
	full := "persistent://public/default/" + local

	for _, tc := range []struct{ name, producerTopic, consumerTopic string }{
		{"short producer, full consumer", local, full},
		{"full producer, short consumer", full, local},
		{"tenant/namespace/topic", "public/default/" + local, local},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := uniqueName(t)
			cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: tc.consumerTopic, SubscriptionName: sub})
			p := newProducer(t, c, pulsar.ProducerOptions{Topic: tc.producerTopic})
			_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte(sub)})
			require.NoError(t, err)
			got := receive(t, cons)
			require.Equal(t, sub, string(got.Payload()))
			require.Equal(t, full, got.Topic(), "message topic is the full name")
			require.NoError(t, cons.Ack(got))
		})
	}

	r := newReader(t, c, pulsar.ReaderOptions{Topic: local, StartMessageID: pulsar.EarliestMessageID()})
	n := 0
	for r.HasNext() {
		_, err := r.Next(timeout(t, receiveTimeout))
		require.NoError(t, err)
		n++
	}
	require.Equal(t, 3, n, "a reader on the short name sees the three messages sent above")
}

// TestPartitionedTopic: a topic created with three partitions through the
// admin API is seen as such by the client; keyed messages stick to one
// partition each and a consumer of the whole topic gets everything.
func TestPartitionedTopic(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	require.NoError(t, admin.Topics().Create(adminTopic(t, topic), 3))

	md, err := admin.Topics().GetMetadata(adminTopic(t, topic))
	require.NoError(t, err)
	require.Equal(t, 3, md.Partitions)

	parts, err := c.TopicPartitions(topic)
	require.NoError(t, err)
	want := []string{topic + "-partition-0", topic + "-partition-1", topic + "-partition-2"}
	require.ElementsMatch(t, want, parts)

	cons := subscribe(t, c, pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            "sub",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})

	const n, keys = 120, 12
	for i := range n {
		_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{
			Payload: payload(i),
			Key:     fmt.Sprintf("key-%d", i%keys),
		})
		require.NoError(t, err)
	}

	msgs := receiveN(t, cons, n)
	ackAll(t, cons, msgs)
	require.ElementsMatch(t, wantPayloads(0, n), payloads(msgs))

	partitionOfKey := map[string]string{}
	lastOfKey := map[string]string{}
	used := map[string]bool{}
	for _, m := range msgs {
		require.Contains(t, want, m.Topic(), "message topic is the partition's name")
		require.Equal(t, m.Topic(), want[m.ID().PartitionIdx()], "PartitionIdx of %v", m.ID())
		used[m.Topic()] = true
		if prev, ok := partitionOfKey[m.Key()]; ok {
			require.Equal(t, prev, m.Topic(), "key %s went to two partitions", m.Key())
		}
		partitionOfKey[m.Key()] = m.Topic()
		// Per key, order is kept (one key, one partition).
		require.Less(t, lastOfKey[m.Key()], string(m.Payload()), "order of key %s", m.Key())
		lastOfKey[m.Key()] = string(m.Payload())
	}
	require.Greater(t, len(used), 1, "12 keys all hashed to one partition")

	ids, err := cons.GetLastMessageIDs()
	require.NoError(t, err)
	require.Len(t, ids, 3, "one last message id per partition")
	for _, id := range ids {
		require.Contains(t, want, id.Topic())
	}
	expectNothing(t, cons)
}

// TestBatchingAndCompression: every codec the client offers round-trips,
// batched and not batched. A batched producer puts several messages in one
// entry; an unbatched one gives each its own.
func TestBatchingAndCompression(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)

	codecs := []struct {
		name string
		ct   pulsar.CompressionType
	}{
		{"none", pulsar.NoCompression},
		{"lz4", pulsar.LZ4},
		{"zlib", pulsar.ZLib},
		{"zstd", pulsar.ZSTD},
		{"snappy", pulsar.SNAPPY},
	}
	for _, codec := range codecs {
		for _, batched := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/batched=%v", codec.name, batched), func(t *testing.T) {
				topic := newTopic(t)
				cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
				p := newProducer(t, c, pulsar.ProducerOptions{
					Topic:                   topic,
					CompressionType:         codec.ct,
					DisableBatching:         !batched,
					BatchingMaxPublishDelay: time.Second, // batches close on size
					BatchingMaxMessages:     10,
				})
				const n = 30
				bodies := make([][]byte, n)
				for i := range bodies {
					// compressible text, a binary tail, and one large body
					bodies[i] = append(bytes.Repeat([]byte("compress me "), 20+i), byte(i), 0, 0xff)
				}
				bodies[n-1] = bytes.Repeat([]byte{0xab, 0xcd, 0x00}, 40_000)

				ids := make([]pulsar.MessageID, n)
				errs := make(chan error, n)
				for i, b := range bodies {
					p.SendAsync(timeout(t, opTimeout), &pulsar.ProducerMessage{
						Payload:    b,
						Properties: map[string]string{"i": fmt.Sprint(i)},
					}, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
						ids[i] = id
						errs <- err
					})
				}
				require.NoError(t, p.FlushWithCtx(timeout(t, opTimeout)))
				for range n {
					require.NoError(t, <-errs)
				}

				entries := map[[2]int64]int{}
				for _, id := range ids {
					entries[[2]int64{id.LedgerID(), id.EntryID()}]++
				}
				if batched {
					require.Less(t, len(entries), n, "batched messages share entries")
				} else {
					require.Len(t, entries, n, "each unbatched message is its own entry")
				}

				msgs := receiveN(t, cons, n)
				for i, m := range msgs {
					require.Equal(t, fmt.Sprint(i), m.Properties()["i"], "order")
					require.True(t, bytes.Equal(bodies[i], m.Payload()), "payload %d differs after %s", i, codec.name)
					require.True(t, sameEntry(ids[i], m.ID()) && ids[i].BatchIdx() == m.ID().BatchIdx(),
						"message %d: received id %v, send returned %v", i, m.ID(), ids[i])
				}
				ackAll(t, cons, msgs)
			})
		}
	}
}

// TestProducerAccessModes: Shared producers coexist; an Exclusive producer
// excludes every other; a producer name is unique on a topic. Pulsar's
// errors (AbstractTopic.incrementTopicEpochIfNeeded): a Shared producer
// joining a topic held by an exclusive producer gets ProducerBusy; an
// Exclusive producer refused gets ProducerFenced.
func TestProducerAccessModes(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)

	t.Run("shared producers coexist", func(t *testing.T) {
		topic := newTopic(t)
		p1 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
		p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
		require.NotEqual(t, p1.Name(), p2.Name(), "the broker names producers uniquely")
		sendN(t, p1, 0, 1)
		sendN(t, p2, 1, 1)
	})

	t.Run("second exclusive producer is fenced", func(t *testing.T) {
		topic := newTopic(t)
		newProducer(t, c, pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive})
		_, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive})
		require.ErrorContains(t, err, "ProducerFenced")
	})

	t.Run("shared producer refused with ProducerBusy while an exclusive one is connected", func(t *testing.T) {
		topic := newTopic(t)
		newProducer(t, c, pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive})
		_, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		require.ErrorContains(t, err, "ProducerBusy")
	})

	t.Run("exclusive producer refused while shared ones exist", func(t *testing.T) {
		topic := newTopic(t)
		newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
		_, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive})
		require.ErrorContains(t, err, "ProducerFenced")
	})

	t.Run("exclusive producer is released on close", func(t *testing.T) {
		topic := newTopic(t)
		p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive})
		require.NoError(t, err)
		p.Close()
		newProducer(t, c, pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive})
	})

	t.Run("duplicate producer name", func(t *testing.T) {
		topic := newTopic(t)
		name := uniqueName(t)
		p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: name})
		require.Equal(t, name, p.Name())
		_, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: name})
		require.ErrorContains(t, err, "ProducerBusy")
		// The name is free again once the first producer closes.
		p.Close()
		p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: name})
		require.Equal(t, name, p2.Name())
	})
}

// TestSendReceiptsInOrder: synchronous sends return strictly increasing
// message ids; asynchronous sends complete in send order.
func TestSendReceiptsInOrder(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)

	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	ids := sendN(t, p, 0, 20)
	for i := 1; i < len(ids); i++ {
		require.True(t, before(ids[i-1], ids[i]), "id %d (%v) is not after id %d (%v)", i, ids[i], i-1, ids[i-1])
	}

	unbatched := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	var order []int
	done := make(chan struct{})
	const n = 200
	for i := range n {
		unbatched.SendAsync(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: payload(i)},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				assert.NoError(t, err)
				order = append(order, i) // callbacks run one at a time, in receipt order
				if len(order) == n {
					close(done)
				}
			})
	}
	select {
	case <-done:
	case <-time.After(receiveTimeout):
		t.Fatal("async sends did not complete")
	}
	require.True(t, slices.IsSorted(order), "callbacks out of order: %v", order)
}

// TestDeduplication: off by default, a re-sent sequence id is stored twice;
// once enabled on the topic, the broker drops sequence ids it has already
// seen from a producer name and tells a reopened producer where it stopped.
func TestDeduplication(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	seq := func(i int64) *int64 { return &i }

	t.Run("off by default", func(t *testing.T) {
		topic := newTopic(t)
		name := uniqueName(t)
		cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
		p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: name, DisableBatching: true})
		for _, s := range []int64{0, 1, 1, 0} {
			_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: fmt.Appendf(nil, "seq-%d", s), SequenceID: seq(s)})
			require.NoError(t, err)
		}
		p.Close()
		require.Equal(t, []string{"seq-0", "seq-1", "seq-1", "seq-0"}, payloads(receiveN(t, cons, 4)))

		// Without deduplication the broker keeps no sequence state: a
		// producer reopened under the same name starts again at 0.
		p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: name, DisableBatching: true})
		_, err := p2.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("again")})
		require.NoError(t, err)
		require.Equal(t, int64(0), p2.LastSequenceID())
	})

	// Deduplication is enabled either on the topic (a topic policy) or on
	// a namespace of its own, so a shared cluster is not affected.
	t.Run("enabled on the topic", func(t *testing.T) {
		topic := newTopic(t)
		tn := adminTopic(t, topic)
		require.NoError(t, admin.Topics().Create(tn, 0))
		require.NoError(t, admin.Topics().SetDeduplicationStatus(tn, true))
		eventually(t, 10*time.Second, func() error {
			on, err := admin.Topics().GetDeduplicationStatus(tn)
			if err == nil && !on {
				err = fmt.Errorf("deduplication status still false")
			}
			return err
		})
		checkDeduplication(t, c, admin, topic)
	})

	t.Run("enabled on the namespace", func(t *testing.T) {
		ns := "public/" + uniqueName(t)
		require.NoError(t, admin.Namespaces().CreateNamespace(ns))
		t.Cleanup(func() { _ = admin.Namespaces().DeleteNamespace(ns) })
		require.NoError(t, admin.Namespaces().SetDeduplicationStatus(ns, true))
		topic := "persistent://" + ns + "/" + uniqueName(t)
		t.Cleanup(func() { _ = admin.Topics().Delete(adminTopic(t, topic), true, true) })
		require.NoError(t, admin.Topics().Create(adminTopic(t, topic), 0))
		checkDeduplication(t, c, admin, topic)
	})
}

// checkDeduplication checks a topic on which deduplication is enabled: the
// broker drops a producer's sequence ids at or below the highest it stored,
// and a producer reopened under the same name continues after it.
func checkDeduplication(t *testing.T, c pulsar.Client, admin pulsaradmin.Client, topic string) {
	t.Helper()
	seq := func(i int64) *int64 { return &i }
	// A real broker applies policies asynchronously; wait until the topic
	// reports it (a broker that leaves the field empty is taken at its
	// word).
	eventually(t, 10*time.Second, func() error {
		st, err := admin.Topics().GetStats(adminTopic(t, topic))
		if err == nil && st.DeDuplicationStatus != "" && st.DeDuplicationStatus != "Enabled" {
			err = fmt.Errorf("deduplicationStatus %q", st.DeDuplicationStatus)
		}
		return err
	})

	name := uniqueName(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            "sub",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: name, DisableBatching: true})
	for _, s := range []int64{0, 1, 2, 1, 2, 5, 3} {
		_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: fmt.Appendf(nil, "seq-%d", s), SequenceID: seq(s)})
		require.NoError(t, err, "a duplicate is acknowledged, not refused")
	}
	p.Close()

	// The reopened producer continues after the highest sequence id the
	// broker stored (5), so its first automatic id is 6.
	p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: name, DisableBatching: true})
	_, err := p2.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("seq-6")})
	require.NoError(t, err)
	require.Equal(t, int64(6), p2.LastSequenceID(), "PRODUCER_SUCCESS.last_sequence_id of a known producer name")
	_, err = p2.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("dup-4"), SequenceID: seq(4)})
	require.NoError(t, err)

	// Another producer name has its own sequence.
	other := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, Name: name + "-other", DisableBatching: true})
	_, err = other.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("other-0"), SequenceID: seq(0)})
	require.NoError(t, err)

	got := payloads(receiveN(t, cons, 6))
	require.Equal(t, []string{"seq-0", "seq-1", "seq-2", "seq-5", "seq-6", "other-0"}, got,
		"duplicates (sequence id at or below the producer's highest) must be dropped")
	expectNothing(t, cons)
}

// TestWaitForExclusive: a WaitForExclusive producer is created only once
// the exclusive producer leaves, and while it waits the topic counts as
// held: Shared producers get ProducerBusy, Exclusive ones ProducerFenced.
// (pulsar-client-go v0.19.0 has no ExclusiveWithFencing mode; minipulsar's
// own tests cover it with a raw client.)
func TestWaitForExclusive(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	holder, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive})
	require.NoError(t, err)
	created := make(chan pulsar.Producer, 1)
	go func() {
		p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeWaitForExclusive})
		if err != nil {
			t.Errorf("WaitForExclusive producer: %v", err)
		}
		created <- p
	}()
	select {
	case p := <-created:
		if p != nil {
			p.Close()
		}
		t.Fatal("the WaitForExclusive producer was created while the topic was held")
	case <-time.After(quietPeriod):
	}
	_, err = c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	require.ErrorContains(t, err, "ProducerBusy", "a shared producer while one waits for exclusive access")
	holder.Close()
	select {
	case p := <-created:
		require.NotNil(t, p)
		t.Cleanup(p.Close)
		sendN(t, p, 0, 1)
		_, err = c.CreateProducer(pulsar.ProducerOptions{Topic: topic, ProducerAccessMode: pulsar.ProducerAccessModeExclusive})
		require.ErrorContains(t, err, "ProducerFenced")
	case <-time.After(receiveTimeout):
		t.Fatal("the WaitForExclusive producer did not get the topic after the exclusive one closed")
	}
}
