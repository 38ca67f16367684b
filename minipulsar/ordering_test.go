package minipulsar_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// TestReceiptBeforeDispatch: the send receipt is written to the producer's
// connection before the message is dispatched, so a consumer on the same
// connection (one client) never receives a message whose send callback has
// not run yet. With a data directory the receipts are released by the
// store's writer goroutine after each group fsync, while dispatchers run
// concurrently: the widest window for the wrong order.
func TestReceiptBeforeDispatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts minipulsar.Options
	}{
		{"memory", minipulsar.Options{}},
		{"data dir", minipulsar.Options{DataDir: t.TempDir()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := minipulsar.RunOptionsT(t, tc.opts)
			c := clientOf(t, s.ServiceURL())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var conss []pulsar.Consumer
			for i := range 4 {
				cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "order", SubscriptionName: fmt.Sprint("s", i)})
				require.NoError(t, err)
				t.Cleanup(cons.Close)
				conss = append(conss, cons)
			}
			var mu sync.Mutex
			acked := map[string]bool{}
			const n = 2000
			for p := range 4 {
				prod := producerOf(t, c, "order", false, pulsar.ProducerOptions{})
				go func() {
					for i := range n / 4 {
						prod.SendAsync(ctx, &pulsar.ProducerMessage{Payload: fmt.Appendf(nil, "%d-%d", p, i)},
							func(_ pulsar.MessageID, m *pulsar.ProducerMessage, err error) {
								mu.Lock()
								acked[string(m.Payload)] = err == nil
								mu.Unlock()
							})
					}
				}()
			}
			early := 0
			for _, cons := range conss {
				for range n {
					m, err := cons.Receive(ctx)
					require.NoError(t, err)
					mu.Lock()
					if !acked[string(m.Payload())] {
						early++
					}
					mu.Unlock()
				}
			}
			require.Zero(t, early, "messages received before their send receipt")
		})
	}
}
