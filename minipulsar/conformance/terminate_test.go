package conformance

import (
	"fmt"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

// TestTopicTermination: terminating a topic answers the id of its last
// message; from then on the topic takes nothing: its producer is closed by
// the broker and fails its sends, and a new producer is refused with
// TopicTerminatedError. Consumers still read everything published before.
// (Pulsar then sends REACHED_END_OF_TOPIC once a subscription has
// acknowledged everything; pulsar-client-go v0.19.0 does not understand it
// and drops its connection, so this test leaves one message unacknowledged
// and minipulsar's own tests check that command with a raw client.)
func TestTopicTermination(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	ids := sendN(t, p, 0, 3)

	last, err := admin.Topics().Terminate(adminTopic(t, topic))
	require.NoError(t, err)
	require.EqualValues(t, ids[2].LedgerID(), last.LedgerID)
	require.EqualValues(t, ids[2].EntryID(), last.EntryID)

	closedByBroker.Add(1) // see closedProducerLoop in main_test.go
	eventually(t, receiveTimeout, func() error {
		if _, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: payload(9)}); err == nil {
			return fmt.Errorf("a send to a terminated topic succeeded")
		}
		return nil
	})
	_, err = c.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	require.ErrorContains(t, err, "TopicTerminatedError")

	msgs := receiveN(t, cons, 3)
	require.Equal(t, wantPayloads(0, 3), payloads(msgs))
	require.NoError(t, cons.Ack(msgs[0]))
	expectNothing(t, cons)
}
