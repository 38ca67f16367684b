package conformance

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

// TestDelayedDelivery: on Shared and Key_Shared subscriptions a message
// sent with DeliverAfter or DeliverAt is held back until its time, without
// holding up the messages behind it; on Exclusive and Failover
// subscriptions it is delivered at once, as Pulsar does.
//
// The broker's clock is the real one here (a real Pulsar cannot be given
// another), so the delay is short and the assertions leave room for
// scheduling: never before the time (less early, below), and well within a
// few seconds after.
func TestDelayedDelivery(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	const delay = 1500 * time.Millisecond
	early := deliveryTolerance()

	for _, typ := range []pulsar.SubscriptionType{pulsar.Shared, pulsar.KeyShared} {
		t.Run(subTypeName(typ)+" is held", func(t *testing.T) {
			t.Parallel()
			topic := newTopic(t)
			cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Type: typ})
			p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})

			sentAt := time.Now()
			_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("after"), Key: "k", DeliverAfter: delay})
			require.NoError(t, err)
			_, err = p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("at"), Key: "k", DeliverAt: sentAt.Add(delay)})
			require.NoError(t, err)
			_, err = p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("now"), Key: "k"})
			require.NoError(t, err)

			first := receive(t, cons)
			require.Equal(t, "now", string(first.Payload()), "the undelayed message is not held up by the delayed ones")
			require.Less(t, time.Since(sentAt), delay, "the undelayed message waited for the delayed ones")
			require.NoError(t, cons.Ack(first))

			got := receiveN(t, cons, 2)
			elapsed := time.Since(sentAt)
			require.ElementsMatch(t, []string{"after", "at"}, payloads(got))
			require.GreaterOrEqual(t, elapsed, delay-early, "delayed messages delivered early")
			require.Less(t, elapsed, delay+5*time.Second, "delayed messages delivered far too late")
			ackAll(t, cons, got)

			// A nacked delayed message comes back (its time has passed).
			_, err = p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("short"), Key: "k", DeliverAfter: 200 * time.Millisecond})
			require.NoError(t, err)
			m := receive(t, cons)
			cons.Nack(m)
			again := receive(t, cons)
			require.Equal(t, "short", string(again.Payload()))
			require.NoError(t, cons.Ack(again))
		})
	}

	for _, typ := range []pulsar.SubscriptionType{pulsar.Exclusive, pulsar.Failover} {
		t.Run(subTypeName(typ)+" is not held", func(t *testing.T) {
			t.Parallel()
			topic := newTopic(t)
			cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Type: typ})
			p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
			sentAt := time.Now()
			_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("later"), DeliverAfter: time.Minute})
			require.NoError(t, err)
			m := receive(t, cons)
			require.Equal(t, "later", string(m.Payload()))
			require.Less(t, time.Since(sentAt), 5*time.Second)
			require.NoError(t, cons.Ack(m))
		})
	}

	// One subscription's type does not change another's: a Shared
	// subscription holds the message while an Exclusive one on the same
	// topic has it at once.
	t.Run("per subscription", func(t *testing.T) {
		t.Parallel()
		topic := newTopic(t)
		shared := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "shared", Type: pulsar.Shared})
		excl := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "excl", Type: pulsar.Exclusive})
		p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
		sentAt := time.Now()
		_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("x"), DeliverAfter: delay})
		require.NoError(t, err)
		receive(t, excl)
		expectNothing(t, shared)
		receive(t, shared)
		require.GreaterOrEqual(t, time.Since(sentAt), delay-early)
	})
}

// deliveryTolerance is how early a delayed message may arrive. minipulsar
// delivers on time (less clock granularity); a real Pulsar in its default
// non-strict mode may deliver up to delayedDeliveryTickTimeMillis (1 s)
// early.
func deliveryTolerance() time.Duration {
	if realPulsar() {
		return 1050 * time.Millisecond
	}
	return 50 * time.Millisecond
}

// subTypeName names a subscription type as Pulsar does.
func subTypeName(typ pulsar.SubscriptionType) string {
	switch typ {
	case pulsar.Exclusive:
		return "Exclusive"
	case pulsar.Shared:
		return "Shared"
	case pulsar.Failover:
		return "Failover"
	case pulsar.KeyShared:
		return "Key_Shared"
	}
	return "unknown"
}
