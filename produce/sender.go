package produce

import (
	"context"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// Receipt says where a message became durable.
type Receipt struct {
	MessageID string // FormatMessageID form
	Cluster   string
	Status    Status
	DeliverAt time.Time // for StatusScheduled
}

// Sender makes accepted messages durable. It is the seam where retry,
// circuit breaking, the disaster-recovery cluster and the local spool plug
// in (issue 4) by wrapping the PulsarSender.
//
// SendAsync calls done exactly once, on any goroutine (possibly the
// caller's), with a durable Receipt or an error; done must not block. ctx
// bounds the hand-over; the outcome comes within the sender's own send
// timeout even when ctx ends first. Messages handed over by one goroutine
// keep their order per topic. Safe for concurrent use.
type Sender interface {
	SendAsync(ctx context.Context, m *Message, done func(Receipt, error))
}

// Scheduler takes every delayed message (delayLevel, deliverAfter and
// deliverAt): delay-level topics, the timing wheel or Pulsar's native
// delivery, as it decides (the delay package's Engine). It records the
// scheduled event itself. Without one, delayLevel gets 501
// DELAY_LEVEL_UNAVAILABLE and the PulsarSender passes deliverAfter and
// deliverAt to Pulsar's native delayed delivery.
type Scheduler interface {
	// HasLevel reports whether level is configured.
	HasLevel(level string) bool
	// ScheduleAsync follows the Sender contract; the receipt's status is
	// StatusScheduled.
	ScheduleAsync(ctx context.Context, m *Message, done func(Receipt, error))
}

// PulsarSender sends through a producer Pool to one cluster. deliverAfter
// and deliverAt become Pulsar's DeliverAt: the broker holds the message and
// dispatches it when due, but only to Shared and Key_Shared subscriptions
// (Exclusive and Failover subscriptions get it at once). Such messages
// report StatusScheduled.
type PulsarSender struct {
	Pool    *Pool
	Cluster string
	Now     func() time.Time // time.Now when nil
}

var _ Sender = (*PulsarSender)(nil)

// SendAsync implements Sender.
func (s *PulsarSender) SendAsync(ctx context.Context, m *Message, done func(Receipt, error)) {
	pm := &pulsar.ProducerMessage{
		Payload:    m.Payload,
		Key:        m.Key,
		Properties: m.PulsarProperties(),
		EventTime:  m.EventTime,
	}
	rc := Receipt{Cluster: s.Cluster, Status: StatusPersisted}
	if due := m.DueAt(); !due.IsZero() {
		now := time.Now
		if s.Now != nil {
			now = s.Now
		}
		if due.After(now()) {
			pm.DeliverAt = due
			rc.Status, rc.DeliverAt = StatusScheduled, due
		}
	}
	s.Pool.SendAsync(ctx, m.Topic, pm, func(id pulsar.MessageID, err error) {
		if err != nil {
			done(Receipt{}, err)
			return
		}
		rc.MessageID = wire.FormatMessageID(id)
		done(rc, nil)
	})
}
