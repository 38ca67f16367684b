package delay

import (
	"context"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
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

// DuePublisher publishes due messages, wheel and level, to their real
// topics. The sidecar passes its durable sender (retry, disaster-recovery
// failover, the local spool: ADR 050), so a message that falls due while
// the primary cluster is down is kept like any produce; without one the
// engine forwards through its Publisher.
//
// PublishDue calls done exactly once, on any goroutine, with where the
// message went or an error; done must not block. ctx bounds the whole
// publish. Messages handed over by one goroutine keep their order per
// topic while no fault intervenes. Safe for concurrent use.
type DuePublisher interface {
	PublishDue(ctx context.Context, topic string, msg *pulsar.ProducerMessage, done func(Delivery, error))
}

// Delivery says where a due message went.
type Delivery struct {
	// MessageID is the broker's id in FormatMessageID form; "" when the
	// message was spooled (no broker holds it yet).
	MessageID string
	// Cluster and Status are the durable sender's ("persisted",
	// "failover", "spooled"); empty for a plain Publisher.
	Cluster string
	Status  string
}

// publisherDue forwards through a plain Publisher: the primary only, no
// failover, no spool.
type publisherDue struct{ pub Publisher }

func (p publisherDue) PublishDue(ctx context.Context, topic string, msg *pulsar.ProducerMessage, done func(Delivery, error)) {
	p.pub.SendAsync(ctx, topic, msg, func(id pulsar.MessageID, err error) {
		if err != nil {
			done(Delivery{}, err)
			return
		}
		done(Delivery{MessageID: wire.FormatMessageID(id)}, nil)
	})
}

type dueResult struct {
	d   Delivery
	err error
}

// publishDue publishes msg and waits for the answer or ctx. When ctx ends
// first the message may still be stored.
func publishDue(ctx context.Context, pub DuePublisher, topic string, msg *pulsar.ProducerMessage) (Delivery, error) {
	ch := make(chan dueResult, 1)
	pub.PublishDue(ctx, topic, msg, func(d Delivery, err error) { ch <- dueResult{d, err} })
	select {
	case r := <-ch:
		return r.d, r.err
	case <-ctx.Done():
		return Delivery{}, ctx.Err()
	}
}

// firedProps adds where a due message went to a fired event's properties.
func firedProps(p map[string]string, d Delivery) map[string]string {
	if d.Cluster != "" {
		p["cluster"] = d.Cluster
	}
	if d.Status != "" {
		p["status"] = d.Status
	}
	return p
}
