package minipulsar_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

func newClient(t *testing.T, url string) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, OperationTimeout: 5 * time.Second, ConnectionTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func TestSmokeRoundTrip(t *testing.T) {
	s := minipulsar.RunT(t)
	c := newClient(t, s.ServiceURL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "smoke", SubscriptionName: "s", Type: pulsar.Shared})
	require.NoError(t, err)
	defer cons.Close()
	prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "smoke"})
	require.NoError(t, err)
	defer prod.Close()

	const n = 2000
	for i := 0; i < n; i++ {
		prod.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i)), Key: fmt.Sprint(i % 7), Properties: map[string]string{"i": fmt.Sprint(i)}}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			require.NoError(t, err)
		})
	}
	require.NoError(t, prod.FlushWithCtx(ctx))
	for i := 0; i < n; i++ {
		m, err := cons.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), string(m.Payload()))
		require.Equal(t, fmt.Sprint(i), m.Properties()["i"])
		require.NoError(t, cons.Ack(m))
	}
}

// TestChunkedMessages: a payload split into chunks by the client is stored
// as several entries and reassembled by the consumer.
func TestChunkedMessages(t *testing.T) {
	s := minipulsar.RunT(t)
	c := newClient(t, s.ServiceURL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "chunks", SubscriptionName: "s"})
	require.NoError(t, err)
	defer cons.Close()
	prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "chunks", DisableBatching: true, EnableChunking: true, ChunkMaxMessageSize: 1000})
	require.NoError(t, err)
	defer prod.Close()
	big := make([]byte, 10_500)
	for i := range big {
		big[i] = byte(i * 7)
	}
	_, err = prod.Send(ctx, &pulsar.ProducerMessage{Payload: big, Key: "k"})
	require.NoError(t, err)
	m, err := cons.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, big, m.Payload())
	require.NoError(t, cons.Ack(m))
	msgs, err := s.Messages("chunks")
	require.NoError(t, err)
	require.Len(t, msgs, 1, "inspection joins the chunks into one message")
}
