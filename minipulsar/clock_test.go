package minipulsar_test

import (
	"context"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// TestFakeClockDelayedDelivery: with a FakeClock, a message delayed by an
// hour is held until the clock is advanced past its time, with no sleeping.
func TestFakeClockDelayedDelivery(t *testing.T) {
	clock := minipulsar.NewFakeClock(time.Now())
	s := minipulsar.RunOptionsT(t, minipulsar.Options{Clock: clock})
	c := newClient(t, s.ServiceURL())
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "fake-clock", SubscriptionName: "s", Type: pulsar.Shared, AckWithResponse: true})
	require.NoError(t, err)
	defer cons.Close()
	prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "fake-clock"})
	require.NoError(t, err)
	defer prod.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("later"), DeliverAfter: time.Hour})
	require.NoError(t, err)
	_, err = prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("now")})
	require.NoError(t, err)

	m, err := cons.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "now", string(m.Payload()), "the undelayed message overtakes the delayed one")
	require.NoError(t, cons.Ack(m))

	backlog, err := s.Backlog("fake-clock", "s")
	require.NoError(t, err)
	require.Equal(t, int64(1), backlog, "the delayed message waits in the backlog")

	clock.Advance(59 * time.Minute)
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	_, err = cons.Receive(short)
	require.Error(t, err, "nothing is delivered a minute early")

	clock.Advance(2 * time.Minute)
	m, err = cons.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "later", string(m.Payload()))
	require.NoError(t, cons.Ack(m))
}
