package conformance

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

// resubscribe closes cons (flushing its pending acks) and subscribes again
// with the same options.
func resubscribe(t *testing.T, c pulsar.Client, cons pulsar.Consumer, o pulsar.ConsumerOptions) pulsar.Consumer {
	t.Helper()
	cons.Close()
	return subscribe(t, c, o)
}

// TestIndividualAck: acknowledged messages are not redelivered after the
// consumer reconnects; only the unacknowledged ones come back, in order,
// on every subscription type.
func TestIndividualAck(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	for _, tc := range []struct {
		name string
		typ  pulsar.SubscriptionType
	}{
		{"exclusive", pulsar.Exclusive},
		{"shared", pulsar.Shared},
		{"failover", pulsar.Failover},
		{"key_shared", pulsar.KeyShared},
	} {
		for _, withReceipt := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/receipts=%v", tc.name, withReceipt), func(t *testing.T) {
				topic := newTopic(t)
				opts := pulsar.ConsumerOptions{
					Topic:            topic,
					SubscriptionName: "sub",
					Type:             tc.typ,
					AckWithResponse:  withReceipt,
				}
				cons := subscribe(t, c, opts)
				p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
				sendN(t, p, 0, 10)

				msgs := receiveN(t, cons, 10)
				var unacked []string
				for i, m := range msgs {
					if i%3 == 0 {
						unacked = append(unacked, string(m.Payload()))
						continue
					}
					require.NoError(t, cons.Ack(m), "ack %d", i)
				}

				cons = resubscribe(t, c, cons, opts)
				again := receiveN(t, cons, len(unacked))
				// (No assertion on RedeliveryCount here: a real broker
				// forgets redelivery counts when the last consumer of a
				// subscription leaves.)
				require.Equal(t, unacked, payloads(again), "only the unacked messages come back")
				ackAll(t, cons, again)
				expectNothing(t, cons)

				cons = resubscribe(t, c, cons, opts)
				expectNothing(t, cons)
			})
		}
	}
}

// TestAckIDList: a list of ids is acknowledged at once, with a receipt.
func TestAckIDList(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Type: pulsar.Shared, AckWithResponse: true}
	cons := subscribe(t, c, opts)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	sendN(t, p, 0, 6)
	msgs := receiveN(t, cons, 6)
	require.NoError(t, cons.AckIDList([]pulsar.MessageID{msgs[0].ID(), msgs[2].ID(), msgs[4].ID()}))
	cons = resubscribe(t, c, cons, opts)
	require.Equal(t, []string{"msg-0001", "msg-0003", "msg-0005"}, payloads(receiveN(t, cons, 3)))
}

// TestCumulativeAck: on Exclusive and Failover subscriptions a cumulative
// ack covers the named message and everything before it.
func TestCumulativeAck(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	for _, tc := range []struct {
		name    string
		typ     pulsar.SubscriptionType
		batched bool
		want    []string
	}{
		{"exclusive", pulsar.Exclusive, false, wantPayloads(7, 3)},
		{"failover", pulsar.Failover, false, wantPayloads(7, 3)},
		// Batches of five: acking message 6 (second of the second batch)
		// cumulatively makes the client ack the first batch's entry; the
		// second batch comes back whole.
		{"exclusive/batched", pulsar.Exclusive, true, wantPayloads(5, 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := newTopic(t)
			opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Type: tc.typ, AckWithResponse: true}
			cons := subscribe(t, c, opts)
			p := newProducer(t, c, pulsar.ProducerOptions{
				Topic:                   topic,
				DisableBatching:         !tc.batched,
				BatchingMaxMessages:     5,
				BatchingMaxPublishDelay: time.Second,
			})
			sendBatch(t, p, 0, 10)
			msgs := receiveN(t, cons, 10)
			require.NoError(t, cons.AckCumulative(msgs[6]))
			cons = resubscribe(t, c, cons, opts)
			require.Equal(t, tc.want, payloads(receiveN(t, cons, len(tc.want))))
			expectNothing(t, cons)
		})
	}
}

// TestBatchIndexAck: with batch-index acknowledgement, acking part of a
// batch is remembered by the broker: after a reconnect only the unacked
// messages of the batch come back. Without it the whole batch comes back.
func TestBatchIndexAck(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	for _, batchIndexAck := range []bool{true, false} {
		t.Run(fmt.Sprintf("enabled=%v", batchIndexAck), func(t *testing.T) {
			topic := newTopic(t)
			opts := pulsar.ConsumerOptions{
				Topic:                          topic,
				SubscriptionName:               "sub",
				Type:                           pulsar.Shared,
				EnableBatchIndexAcknowledgment: batchIndexAck,
				AckWithResponse:                true,
			}
			cons := subscribe(t, c, opts)
			p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 10, BatchingMaxPublishDelay: time.Second})
			ids := sendBatch(t, p, 0, 10)
			require.True(t, sameEntry(ids[0], ids[9]), "the ten messages form one batch")

			msgs := receiveN(t, cons, 10)
			for i, m := range msgs {
				require.Equal(t, int32(i), m.ID().BatchIdx())
				if i%2 == 0 {
					require.NoError(t, cons.Ack(m))
				}
			}
			cons = resubscribe(t, c, cons, opts)
			if batchIndexAck {
				again := receiveN(t, cons, 5)
				require.Equal(t, []string{"msg-0001", "msg-0003", "msg-0005", "msg-0007", "msg-0009"}, payloads(again))
				ackAll(t, cons, again)
				expectNothing(t, cons)
				cons = resubscribe(t, c, cons, opts)
				expectNothing(t, cons)
			} else {
				require.Equal(t, wantPayloads(0, 10), payloads(receiveN(t, cons, 10)),
					"a partly acked batch is redelivered whole")
			}
		})
	}
}

// TestNegativeAck: a negatively acknowledged message comes back after the
// nack delay; other messages are not held up. Shared and Key_Shared
// subscriptions count redeliveries (the client's dead-letter policy relies
// on it); Exclusive and Failover ones do not, as in Pulsar, whose
// single-active-consumer dispatchers have no redelivery tracker.
func TestNegativeAck(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	for _, tc := range []struct {
		name     string
		typ      pulsar.SubscriptionType
		counting bool
	}{
		{"shared", pulsar.Shared, true},
		{"key_shared", pulsar.KeyShared, true},
		{"exclusive", pulsar.Exclusive, false},
		{"failover", pulsar.Failover, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := newTopic(t)
			// Acks with receipts, so every ack is at the broker before the
			// nack's redelivery request.
			cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Type: tc.typ, AckWithResponse: true})
			p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
			sendN(t, p, 0, 3)

			msgs := receiveN(t, cons, 3)
			require.Equal(t, wantPayloads(0, 3), payloads(msgs))
			require.NoError(t, cons.Ack(msgs[0]))
			cons.Nack(msgs[1])
			require.NoError(t, cons.Ack(msgs[2]))
			for round := 1; round <= 3; round++ {
				m := receive(t, cons)
				require.Equal(t, "msg-0001", string(m.Payload()), "round %d: only the nacked message comes back", round)
				want := uint32(0)
				if tc.counting {
					want = uint32(round)
				}
				require.Equal(t, want, m.RedeliveryCount(), "round %d", round)
				if round < 3 {
					cons.Nack(m)
				} else {
					require.NoError(t, cons.Ack(m))
				}
			}
			expectNothing(t, cons)
		})
	}
}

// TestDeadLetterPolicy: a message nacked MaxDeliveries times goes to the
// dead-letter topic (created with its initial subscription) with its
// payload, key and properties, and leaves the original subscription.
func TestDeadLetterPolicy(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	dlqTopic := topic + "-DLQ"
	cons := subscribe(t, c, pulsar.ConsumerOptions{
		Topic:            topic,
		SubscriptionName: "sub",
		Type:             pulsar.Shared,
		DLQ: &pulsar.DLQPolicy{
			MaxDeliveries:           3,
			DeadLetterTopic:         dlqTopic,
			InitialSubscriptionName: "dlq-sub",
		},
	})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{
		Payload:    []byte("poison"),
		Key:        "pk",
		Properties: map[string]string{"origin": "test"},
	})
	require.NoError(t, err)
	sendN(t, p, 1, 1)

	var deliveries []uint32
	for len(deliveries) < 3 {
		m := receive(t, cons)
		if string(m.Payload()) != "poison" {
			require.NoError(t, cons.Ack(m))
			continue
		}
		deliveries = append(deliveries, m.RedeliveryCount())
		cons.Nack(m)
	}
	require.Equal(t, []uint32{0, 1, 2}, deliveries)
	expectNothing(t, cons)

	// The DLQ producer was created with initial subscription "dlq-sub",
	// so the dead letter waits there even though nobody subscribed first.
	dlq := subscribe(t, c, pulsar.ConsumerOptions{Topic: dlqTopic, SubscriptionName: "dlq-sub"})
	dead := receive(t, dlq)
	require.Equal(t, "poison", string(dead.Payload()))
	require.Equal(t, "pk", dead.Key())
	require.Equal(t, "test", dead.Properties()["origin"])
	require.NoError(t, dlq.Ack(dead))

	// The original subscription's copy was acknowledged by the client.
	eventually(t, 5*time.Second, func() error {
		st, err := admin.Topics().GetStats(adminTopic(t, topic))
		if err == nil && st.Subscriptions["sub"].MsgBacklog != 0 {
			err = fmt.Errorf("backlog of sub is %d", st.Subscriptions["sub"].MsgBacklog)
		}
		return err
	})
}

// TestRetryLetterTopic: ReconsumeLater republishes to the retry topic with
// a delay and a reconsume count; past MaxDeliveries the message goes to the
// dead-letter topic.
func TestRetryLetterTopic(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	dlqTopic := topic + "-sub-DLQ"
	cons := subscribe(t, c, pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            "sub",
		Type:                        pulsar.Shared,
		RetryEnable:                 true,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		DLQ:                         &pulsar.DLQPolicy{MaxDeliveries: 2, InitialSubscriptionName: "dlq-sub"},
	})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("retry-me"), Key: "k"})
	require.NoError(t, err)

	m := receive(t, cons)
	require.Equal(t, "retry-me", string(m.Payload()))
	require.Equal(t, topic, m.Topic())
	const delay = 500 * time.Millisecond
	for i := 1; i <= 2; i++ {
		at := time.Now()
		cons.ReconsumeLater(m, delay)
		m = receive(t, cons)
		require.GreaterOrEqual(t, time.Since(at), delay-deliveryTolerance(), "retry %d came before its delay", i)
		require.Equal(t, "retry-me", string(m.Payload()))
		require.Equal(t, "k", m.Key())
		require.Equal(t, topic+"-sub-RETRY", m.Topic())
		require.Equal(t, strconv.Itoa(i), m.Properties()[pulsar.SysPropertyReconsumeTimes])
		require.Equal(t, topic, m.Properties()[pulsar.SysPropertyRealTopic])
	}
	// Third time: past MaxDeliveries, to the dead-letter topic.
	cons.ReconsumeLater(m, delay)
	dlq := subscribe(t, c, pulsar.ConsumerOptions{Topic: dlqTopic, SubscriptionName: "dlq-sub"})
	dead := receive(t, dlq)
	require.Equal(t, "retry-me", string(dead.Payload()))
	require.Equal(t, "3", dead.Properties()[pulsar.SysPropertyReconsumeTimes])
	expectNothing(t, cons)
}
