package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/durable"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// startDelay builds the delay engine (issue 6): delay-level topics with
// their forwarders, the timing wheel over its Redis index, and Pulsar's
// native delivery, chosen per message by the engine.
func (a *App) startDelay(ctx context.Context) error {
	cfg := &a.cfg.Delay
	dc := delay.Config{
		Mode: delay.Mode(cfg.Mode),
		Node: a.cfg.Node,
	}
	dc.Index.Prefix = a.delayPrefix() // one hash tag on Redis Cluster (redis.go)
	dc.Index.WaitReplicas, dc.Index.WaitTimeout = a.cfg.Redis.WaitReplicas, a.cfg.Redis.WaitTimeout
	if strings.TrimSpace(cfg.Levels) == "off" {
		dc.Levels.Disabled = true
	} else if cfg.Levels != "" {
		dc.Levels.Levels = strings.Fields(strings.ReplaceAll(cfg.Levels, ",", " "))
	}
	dc.Logger = a.log.With("component", "delay")
	e, err := delay.NewEngine(delay.EngineOptions{
		Client: a.consumerClient,
		// Level messages and native delays go to the primary through the
		// pool: a failure is the produce request's answer. Due messages go
		// through the durable sender, like any produce (ADR 040).
		Publisher:    a.pool,
		DuePublisher: duePublisher{a.durable},
		Redis:        a.rdb,
		Recorder:     a.rec,
		Registerer:   a.reg,
		// While the primary's breaker is open, level and native messages
		// go to the wheel instead of waiting for a broker that is down.
		PrimaryDown: a.primaryDown,
		Config:      dc,
	})
	if err != nil {
		return fmt.Errorf("app: delay engine: %w", err)
	}
	// Start does not wait for the broker: the level forwarders attach in
	// the background, and /readyz reports them until they have.
	if err := e.Start(ctx); err != nil {
		return fmt.Errorf("app: start delay engine: %w", err)
	}
	a.delay = e
	return nil
}

// duePublisher forwards due messages, wheel and level, through the durable
// sender: retry, the disaster-recovery cluster and the spool, so a message
// that falls due while the primary is down is kept like any produce, with
// its uid (ADR 040, ADR 050).
type duePublisher struct{ d *durable.Sender }

var _ delay.DuePublisher = duePublisher{}

func (p duePublisher) PublishDue(ctx context.Context, topic string, pm *pulsar.ProducerMessage, done func(delay.Delivery, error)) {
	p.d.SendAsync(ctx, dueMessage(topic, pm, time.Now()), func(rc produce.Receipt, err error) {
		if err != nil {
			done(delay.Delivery{}, err)
			return
		}
		done(delay.Delivery{MessageID: rc.MessageID, Cluster: rc.Cluster, Status: string(rc.Status)}, nil)
	})
}

// dueMessage is the produce.Message whose PulsarProperties are pm's
// properties, so the durable sender (and a spool replay) publishes exactly
// what the forwarder built: the psc-* properties become their fields, the
// rest stay properties. A message without psc-accepted-at (none that the
// sidecar schedules) gets now.
func dueMessage(topic string, pm *pulsar.ProducerMessage, now time.Time) *produce.Message {
	m := &produce.Message{Topic: topic, Key: pm.Key, EventTime: pm.EventTime, Payload: pm.Payload, AcceptedAt: now}
	for k, v := range pm.Properties {
		switch k {
		case produce.PropUID:
			m.UID = v
		case produce.PropApp:
			m.App = v
		case produce.PropTags:
			m.Tags = wire.ParseTags(v)
		case produce.PropAcceptedAt:
			if t, err := time.Parse(produce.AcceptedAtLayout, v); err == nil {
				m.AcceptedAt = t
				continue
			}
			fallthrough // unreadable: kept as it was
		default:
			if m.Properties == nil {
				m.Properties = make(map[string]string, len(pm.Properties))
			}
			m.Properties[k] = v
		}
	}
	return m
}
