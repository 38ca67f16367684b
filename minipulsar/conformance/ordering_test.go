package conformance

import (
	"fmt"
	"sync"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

// TestReceiptBeforeDispatch: Pulsar acknowledges a publish to its producer
// before the entry is handed to the dispatchers, so a consumer that shares
// the producer's connection (one client, one broker) never sees a message
// before the producer's send callback for it has run. The client handles
// both commands on one goroutine, in wire order.
func TestReceiptBeforeDispatch(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})

	const n = 300
	var mu sync.Mutex
	acked := map[string]bool{}
	for i := range n {
		p.SendAsync(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: payload(i)},
			func(_ pulsar.MessageID, m *pulsar.ProducerMessage, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					acked[string(m.Payload)] = true
				}
			})
	}
	var early []string
	for _, m := range receiveN(t, cons, n) {
		mu.Lock()
		if !acked[string(m.Payload())] {
			early = append(early, string(m.Payload()))
		}
		mu.Unlock()
		require.NoError(t, cons.Ack(m))
	}
	require.Empty(t, early, fmt.Sprintf("%d of %d messages reached the consumer before their send receipt", len(early), n))
}
