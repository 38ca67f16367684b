package durable

import (
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
)

// propDeliverAt is kept in a spool record's properties only (never sent to
// Pulsar): when a delayed message becomes due, as an absolute time, so a
// replay after the due time delivers at once and one before it still waits.
const propDeliverAt = "psc-spool-deliver-at"

// toRecord turns a message into what the spool stores. Properties hold the
// exact Pulsar properties the original send would have set (psc-uid,
// psc-app, psc-accepted-at, psc-tags, psc-idempotency-key,
// psc-duplicate-risk and the user's), so a replay reproduces them.
func toRecord(m *produce.Message) spool.Record {
	props := m.PulsarProperties()
	if due := m.DueAt(); !due.IsZero() {
		props[propDeliverAt] = due.UTC().Format(time.RFC3339Nano)
	}
	return spool.Record{
		UID:        m.UID,
		App:        m.App,
		Topic:      m.Topic,
		Key:        m.Key,
		Tags:       m.Tags,
		Properties: props,
		EventTime:  m.EventTime,
		Payload:    m.Payload,
	}
}

// fromRecord rebuilds the message toRecord stored. Its PulsarProperties
// equal the original's.
func fromRecord(r spool.Record) *produce.Message {
	m := &produce.Message{
		UID:       r.UID,
		App:       r.App,
		Topic:     r.Topic,
		Key:       r.Key,
		Tags:      r.Tags,
		EventTime: r.EventTime,
		Payload:   r.Payload,
	}
	for k, v := range r.Properties {
		switch k {
		case produce.PropUID, produce.PropApp, produce.PropTags:
			// Rebuilt from UID, App and Tags by PulsarProperties.
		case produce.PropAcceptedAt:
			if t, err := time.Parse(produce.AcceptedAtLayout, v); err == nil {
				m.AcceptedAt = t
			}
		case produce.PropIdempotencyKey:
			m.IdempotencyKey = v
		case produce.PropDuplicateRisk:
			m.DuplicateRisk = v == "true"
		case propDeliverAt:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				m.DeliverAt = t
			}
		default:
			if m.Properties == nil {
				m.Properties = make(map[string]string, len(r.Properties))
			}
			m.Properties[k] = v
		}
	}
	return m
}
