package delay

import (
	"context"

	"github.com/apache/pulsar-client-go/pulsar"
)

// Publisher sends messages to Pulsar topics. It is what the engine uses to
// put messages into level topics, to hand native delays to Pulsar and to
// forward due messages to their real topics.
//
// The method is the one of produce.Pool, so the sidecar passes its producer
// pool as is: SendAsync hands msg to topic's producer (creating it when
// needed, waiting at most until ctx is done) and calls done exactly once,
// on any goroutine, with the broker's message id or an error. done must not
// block. Messages handed over by one goroutine keep their order. Safe for
// concurrent use.
type Publisher interface {
	SendAsync(ctx context.Context, topic string, msg *pulsar.ProducerMessage, done func(pulsar.MessageID, error))
}

type sendResult struct {
	id  pulsar.MessageID
	err error
}

// send publishes msg and waits for the broker's answer or ctx. When ctx ends
// first the message may still be stored.
func send(ctx context.Context, pub Publisher, topic string, msg *pulsar.ProducerMessage) (pulsar.MessageID, error) {
	ch := make(chan sendResult, 1)
	pub.SendAsync(ctx, topic, msg, func(id pulsar.MessageID, err error) { ch <- sendResult{id, err} })
	select {
	case r := <-ch:
		return r.id, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
