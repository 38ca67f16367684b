package conformance

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

// readAll reads with HasNext/Next until the reader is at the end.
func readAll(t *testing.T, r pulsar.Reader) []pulsar.Message {
	t.Helper()
	var msgs []pulsar.Message
	for r.HasNext() {
		m, err := r.Next(timeout(t, receiveTimeout))
		require.NoError(t, err, "Next after HasNext returned true")
		msgs = append(msgs, m)
		require.Less(t, len(msgs), 10_000, "HasNext never becomes false")
	}
	return msgs
}

// next reads one message.
func next(t *testing.T, r pulsar.Reader) pulsar.Message {
	t.Helper()
	m, err := r.Next(timeout(t, receiveTimeout))
	require.NoError(t, err)
	return m
}

// TestReaderStartPositions: a reader starts at the earliest or latest
// message or at a given id, after it or (inclusive) at it, on batched and
// unbatched topics; HasNext turns false at the end.
func TestReaderStartPositions(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)

	for _, batched := range []bool{false, true} {
		name := "unbatched"
		if batched {
			name = "batched"
		}
		t.Run(name, func(t *testing.T) {
			topic := newTopic(t)
			p := newProducer(t, c, pulsar.ProducerOptions{
				Topic:                   topic,
				DisableBatching:         !batched,
				BatchingMaxMessages:     5,
				BatchingMaxPublishDelay: time.Second,
			})
			ids := sendBatch(t, p, 0, 10)
			if batched {
				require.True(t, sameEntry(ids[3], ids[4]), "messages 3 and 4 share a batch")
			}

			for _, tc := range []struct {
				name      string
				start     pulsar.MessageID
				inclusive bool
				want      []string
			}{
				{"earliest", pulsar.EarliestMessageID(), false, wantPayloads(0, 10)},
				{"earliest inclusive", pulsar.EarliestMessageID(), true, wantPayloads(0, 10)},
				{"after id 3", ids[3], false, wantPayloads(4, 6)},
				{"at id 3", ids[3], true, wantPayloads(3, 7)},
				{"after id 4", ids[4], false, wantPayloads(5, 5)},
				{"at last id", ids[9], true, wantPayloads(9, 1)},
				{"after last id", ids[9], false, nil},
				{"latest", pulsar.LatestMessageID(), false, nil},
				{"latest inclusive", pulsar.LatestMessageID(), true, wantPayloads(9, 1)},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := newReader(t, c, pulsar.ReaderOptions{
						Topic:                   topic,
						StartMessageID:          tc.start,
						StartMessageIDInclusive: tc.inclusive,
					})
					got := payloads(readAll(t, r))
					if tc.want == nil {
						require.Empty(t, got)
						return
					}
					require.Equal(t, tc.want, got)
				})
			}
		})
	}

	t.Run("latest sees new messages", func(t *testing.T) {
		topic := newTopic(t)
		p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
		sendN(t, p, 0, 3)
		r := newReader(t, c, pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.LatestMessageID()})
		require.False(t, r.HasNext())
		sendN(t, p, 3, 2)
		// (HasNext of a reader started at Latest stays false until it has
		// read something: the client compares with the Latest id itself.)
		require.Equal(t, "msg-0003", string(next(t, r).Payload()))
		require.Equal(t, []string{"msg-0004"}, payloads(readAll(t, r)))
	})
}

// TestReaderEmptyTopic: on an empty topic HasNext is false and the last
// message id has no entry; once a message is there, both change.
func TestReaderEmptyTopic(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	require.NoError(t, admin.Topics().Create(adminTopic(t, topic), 0))

	r := newReader(t, c, pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	require.False(t, r.HasNext(), "HasNext on an empty topic")
	last, err := r.GetLastMessageID()
	require.NoError(t, err)
	require.Equal(t, int64(-1), last.EntryID(), "last message id of an empty topic: %v", last)

	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	lasts, err := cons.GetLastMessageIDs()
	require.NoError(t, err)
	require.Len(t, lasts, 1)
	require.Equal(t, int64(-1), lasts[0].EntryID())
	require.Equal(t, topic, lasts[0].Topic())

	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	ids := sendN(t, p, 0, 1)
	require.True(t, r.HasNext(), "HasNext once a message is there")
	m := next(t, r)
	require.Equal(t, "msg-0000", string(m.Payload()))
	require.False(t, r.HasNext())
	last, err = r.GetLastMessageID()
	require.NoError(t, err)
	require.True(t, sameEntry(ids[0], last), "last id %v, want %v", last, ids[0])
}

// TestGetLastMessageIDs: the last message id is the id of the last message
// sent, with its batch index when it ended a batch.
func TestGetLastMessageIDs(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})

	unbatched := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	ids := sendN(t, unbatched, 0, 3)
	lasts, err := cons.GetLastMessageIDs()
	require.NoError(t, err)
	require.Len(t, lasts, 1)
	require.True(t, sameEntry(ids[2], lasts[0]), "last id %v, want %v", lasts[0], ids[2])

	batched := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 5, BatchingMaxPublishDelay: time.Second})
	ids = sendBatch(t, batched, 3, 5)
	require.True(t, sameEntry(ids[0], ids[4]), "one batch of five")
	lasts, err = cons.GetLastMessageIDs()
	require.NoError(t, err)
	require.True(t, sameEntry(ids[4], lasts[0]), "last id %v, want %v", lasts[0], ids[4])
	require.Equal(t, int32(4), lasts[0].BatchIdx(), "the last id names the last message of the batch")
}

// sendAroundInstant sends messages 0..4, then 5..9 after a pause, and
// returns their ids and an instant between the two groups.
func sendAroundInstant(t *testing.T, p pulsar.Producer) ([]pulsar.MessageID, time.Time) {
	t.Helper()
	ids := sendN(t, p, 0, 5)
	time.Sleep(50 * time.Millisecond)
	mid := time.Now()
	time.Sleep(50 * time.Millisecond)
	return append(ids, sendN(t, p, 5, 5)...), mid
}

// TestConsumerSeek: seeking a subscription by message id or by publish
// time makes it deliver again from there, acknowledged or not.
func TestConsumerSeek(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	_, mid := sendAroundInstant(t, p)

	for _, tc := range []struct {
		name      string
		typ       pulsar.SubscriptionType
		inclusive bool
		seek      func(cons pulsar.Consumer, msgs []pulsar.Message) error
		want      []string
	}{
		// The client skips the sought message itself unless the consumer
		// is inclusive; the broker must deliver from it either way.
		{"by id", pulsar.Exclusive, false, func(cons pulsar.Consumer, msgs []pulsar.Message) error { return cons.Seek(msgs[3].ID()) }, wantPayloads(4, 6)},
		{"by id inclusive", pulsar.Exclusive, true, func(cons pulsar.Consumer, msgs []pulsar.Message) error { return cons.Seek(msgs[3].ID()) }, wantPayloads(3, 7)},
		{"by id shared", pulsar.Shared, true, func(cons pulsar.Consumer, msgs []pulsar.Message) error { return cons.Seek(msgs[3].ID()) }, wantPayloads(3, 7)},
		{"by time", pulsar.Exclusive, false, func(cons pulsar.Consumer, _ []pulsar.Message) error { return cons.SeekByTime(mid) }, wantPayloads(5, 5)},
		{"by time to the start", pulsar.Shared, false, func(cons pulsar.Consumer, _ []pulsar.Message) error {
			return cons.SeekByTime(mid.Add(-time.Hour))
		}, wantPayloads(0, 10)},
		{"by time to the future", pulsar.Exclusive, false, func(cons pulsar.Consumer, _ []pulsar.Message) error {
			return cons.SeekByTime(time.Now().Add(time.Hour))
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cons := subscribe(t, c, pulsar.ConsumerOptions{
				Topic:                       topic,
				SubscriptionName:            uniqueName(t),
				Type:                        tc.typ,
				SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
				StartMessageIDInclusive:     tc.inclusive,
				AckWithResponse:             true,
			})
			msgs := receiveN(t, cons, 10)
			require.Equal(t, wantPayloads(0, 10), payloads(msgs))
			ackAll(t, cons, msgs)
			require.NoError(t, tc.seek(cons, msgs))
			if tc.want != nil {
				got := receiveN(t, cons, len(tc.want))
				require.Equal(t, tc.want, payloads(got))
				ackAll(t, cons, got)
			}
			expectNothing(t, cons)
		})
	}
}

// TestReaderSeek: a reader moves by time and by message id. After a seek
// the broker keeps the reader's reset position for its reconnection (in
// Pulsar the non-durable cursor outlives the reset), whatever start id the
// client sends again.
func TestReaderSeek(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	_, mid := sendAroundInstant(t, p)

	r := newReader(t, c, pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	msgs := readAll(t, r)
	require.Equal(t, wantPayloads(0, 10), payloads(msgs))

	// Seek by time first: the client then has no stale seek id that
	// would make it drop messages (see partitionConsumer.clearReceiverQueue).
	require.NoError(t, r.SeekByTime(mid))
	require.Equal(t, wantPayloads(5, 5), payloads(readAll(t, r)), "after seeking to the pause")

	require.NoError(t, r.Seek(msgs[6].ID()))
	require.Equal(t, wantPayloads(7, 3), payloads(readAll(t, r)), "after seeking to message 6")

	require.NoError(t, r.Seek(msgs[0].ID()))
	require.Equal(t, wantPayloads(1, 9), payloads(readAll(t, r)), "after seeking to message 0")
}
