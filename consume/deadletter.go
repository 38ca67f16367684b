package consume

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// Properties the engine sets on dead-lettered messages, besides keeping the
// original ones (psc-uid and psc-tags included, so the dead-letter topic
// can be consumed and filtered over the same API).
const (
	PropDeadLetterReason    = "psc-dead-letter-reason"
	PropOriginalMessageID   = "psc-original-message-id"
	PropOriginalTopic       = "psc-original-topic"
	PropOriginalCluster     = "psc-original-cluster"
	PropOriginalSubcription = "psc-subscription"
	PropDeliveries          = "psc-deliveries"
)

// startDeadLetter hands a record to the dead-letter worker. The lease
// script gave this replica an 'x' lease for it, so no other replica hands
// it out meanwhile; if the worker cannot take it now, the record waits
// for that lease to end and is leased (and dead-lettered) again.
func (e *engine) startDeadLetter(r *record, res leaseResult) {
	e.mu.Lock()
	if r.state != stLeasing {
		e.mu.Unlock()
		return
	}
	r.state = stDeadLettering
	r.n = res.n
	e.mu.Unlock()
	select {
	case e.dlqJobs <- r:
	default:
		e.schedule(r, stHeld, res.until)
	}
}

// deadLetterLoop writes dead letters one at a time with one producer per
// cluster, each created on first use and closed with the engine.
func (e *engine) deadLetterLoop() {
	producers := map[int]pulsar.Producer{}
	defer func() {
		for _, p := range producers {
			p.Close()
		}
	}()
	for {
		select {
		case r := <-e.dlqJobs:
			e.deadLetter(producers, r)
		case <-e.quit:
			return
		}
	}
}

func (e *engine) deadLetter(producers map[int]pulsar.Producer, r *record) {
	cfg := e.cfg.Load()
	svc := e.svc
	p := producers[r.cc.idx]
	if p == nil {
		var err error
		p, err = r.cc.cluster.producers().CreateProducer(pulsar.ProducerOptions{
			Topic:           cfg.dlq.Name(),
			DisableBatching: true,
			SendTimeout:     svc.opts.DeadLetter.Timeout,
		})
		if err != nil {
			e.log.Warn("dead-letter producer", "cluster", r.cc.cluster.Name, "topic", cfg.dlq.Name(), "err", err)
			e.schedule(r, stHeld, svc.clock.Now().Add(svc.opts.DeadLetter.Lease))
			return
		}
		producers[r.cc.idx] = p
	}
	msg := r.msg
	reason := r.reason
	if reason == "" {
		reason = fmt.Sprintf("delivered %d times without an acknowledgement (maxDeliveries %d)", r.n, cfg.MaxDeliveries)
	}
	props := make(map[string]string, len(msg.Properties())+6)
	maps.Copy(props, msg.Properties())
	props[PropDeadLetterReason] = reason
	props[PropOriginalMessageID] = wire.FormatMessageID(msg.ID())
	props[PropOriginalTopic] = e.ref.TopicName()
	props[PropOriginalCluster] = r.cc.cluster.Name
	props[PropOriginalSubcription] = e.ref.Subscription
	props[PropDeliveries] = strconv.Itoa(r.n)
	ctx, cancel := context.WithTimeout(context.Background(), svc.opts.DeadLetter.Timeout)
	defer cancel()
	pm := &pulsar.ProducerMessage{Payload: msg.Payload(), Key: msg.Key(), Properties: props}
	if et, ok := eventTime(msg); ok {
		pm.EventTime = et
	}
	if _, err := p.Send(ctx, pm); err != nil {
		e.log.Warn("dead-letter send", "topic", cfg.dlq.Name(), "err", err)
		e.schedule(r, stHeld, svc.clock.Now().Add(svc.opts.DeadLetter.Lease))
		return
	}
	if _, err := svc.states.eval(ctx, deadScript, svc.states.space(e.binding, cfg.ackTimeout), 1, []any{svc.states.widthArg(), r.stateID}, 1); err != nil {
		// The message is in the dead-letter topic; the 'x' lease ends and
		// the next lease dead-letters it again (a duplicate there, with the
		// same uid) unless this is fixed by then. Ack the copy anyway.
		e.log.Warn("dead-letter state", "err", err)
	}
	e.mu.Lock()
	e.removeLocked(r)
	e.mu.Unlock()
	r.cc.ack(msg.ID())
	e.stats.add(outDeadLettered, r.tags)
	svc.trace(traceDeadLettered, e, msg, r.cc, r.tags, r.n, Caller{}, reason)
}

// deadLetterTimeoutDefault bounds one dead-letter send.
const deadLetterTimeoutDefault = 10 * time.Second
