package conformance

import (
	"fmt"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

// TestTopicTermination: terminating a topic answers the id of its last
// message; from then on the topic takes nothing: its producer is closed by
// the broker (it leaves the topic's publishers) and a new producer is
// refused with TopicTerminatedError. Consumers still read everything
// published before. (Pulsar then sends REACHED_END_OF_TOPIC once a
// subscription has acknowledged everything; pulsar-client-go v0.19.0 does
// not understand it and drops its connection, so this test leaves one
// message unacknowledged and minipulsar's own tests check that command with
// a raw client.)
//
// The old producer is not sent to: pulsar-client-go v0.19.0 closes a
// producer the broker closed on a terminated topic from its event loop, and
// a Send racing that close writes to a channel being closed (a data race
// under -race, at times a panic). A SEND that leaves before the client has
// read CLOSE_PRODUCER also names a producer the broker no longer has, for
// which Pulsar closes the connection; the producer therefore has a client of
// its own, so the consumer's connection is never the one closed.
func TestTopicTermination(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	pc := newClient(t, serviceURL)
	p := newProducer(t, pc, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	ids := sendN(t, p, 0, 3)

	last, err := admin.Topics().Terminate(adminTopic(t, topic))
	require.NoError(t, err)
	require.EqualValues(t, ids[2].LedgerID(), last.LedgerID)
	require.EqualValues(t, ids[2].EntryID(), last.EntryID)

	closedByBroker.Add(1) // see closedProducerLoop in main_test.go
	eventually(t, receiveTimeout, func() error {
		st, err := admin.Topics().GetStats(adminTopic(t, topic))
		if err != nil {
			return err
		}
		if n := len(st.Publishers); n != 0 {
			return fmt.Errorf("%d publishers on a terminated topic", n)
		}
		return nil
	})
	_, err = pc.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	require.ErrorContains(t, err, "TopicTerminatedError")

	msgs := receiveN(t, cons, 3)
	require.Equal(t, wantPayloads(0, 3), payloads(msgs))
	require.NoError(t, cons.Ack(msgs[0]))
	expectNothing(t, cons)
}
