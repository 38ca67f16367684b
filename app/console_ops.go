package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// consoleOps are the console's operations and the web page's extra stats
// (issue 15), over the running components.
func (a *App) consoleOps() consoleapi.Ops {
	var ops consoleapi.Ops
	if a.delay != nil {
		ops.Delayed = consoleDelayed{a.delay}
	}
	if a.pipeline != nil {
		ops.Trace = consoleTrace{a.pipeline}
	}
	if a.consume != nil && a.durable != nil {
		ops.DeadLetters = consoleDeadLetters{svc: a.consume, client: a.consumerClient, sender: a.durable, rec: a.rec, node: a.cfg.Node}
	}
	return ops
}

// consoleDelayed lists the wheel's scheduled messages from its index in
// Redis (every replica's).
type consoleDelayed struct{ e *delay.Engine }

// delayedScan is how many of the earliest messages a listing by topic
// without key looks at (the index has no per-topic order).
const delayedScan = 1000

func (p consoleDelayed) ListDelayed(ctx context.Context, q consoleapi.DelayedQuery) ([]consoleapi.Delayed, bool, error) {
	dq := delay.Query{Topic: q.Topic, Key: q.Key, Limit: q.Limit}
	partial := false
	if q.Key == "" {
		dq.Topic = ""
		if q.Topic != "" {
			dq.Limit = delayedScan
		}
	}
	list, err := p.e.List(ctx, dq)
	if err != nil {
		return nil, false, err
	}
	out := make([]consoleapi.Delayed, 0, len(list))
	for _, s := range list {
		if q.Topic != "" && s.Topic != q.Topic {
			continue
		}
		if len(out) == q.Limit {
			break
		}
		out = append(out, delayedView(s))
	}
	if q.Topic != "" && q.Key == "" && len(list) == delayedScan {
		partial = true
	}
	return out, partial, nil
}

func delayedView(s delay.Scheduled) consoleapi.Delayed {
	props := map[string]string{}
	for k, v := range s.Properties {
		if !strings.HasPrefix(k, produce.ReservedPrefix) {
			props[k] = v
		}
	}
	size := len(s.Payload)
	if s.Mode == delay.ModeLevel {
		size = s.Size
	}
	tags := s.Tags
	if tags == nil {
		tags = []string{}
	}
	mode := string(s.Mode)
	if mode == "" {
		mode = string(delay.ModeWheel) // the index holds wheel messages
	}
	return consoleapi.Delayed{UID: s.UID, Mode: mode, Level: s.Level, Topic: s.Topic, Key: s.Key, Tags: tags, App: s.App,
		Due: s.Due.UTC(), Properties: props, PayloadBytes: size, InFlight: !s.LeaseUntil.IsZero()}
}

func (p consoleDelayed) CancelDelayed(ctx context.Context, uid string) (consoleapi.DelayedCancel, error) {
	cn, err := p.e.Cancel(ctx, uid)
	if errors.Is(err, delay.ErrNotFound) {
		return consoleapi.DelayedCancel{}, fmt.Errorf("%w: %w", consoleapi.ErrNotFound, err)
	}
	if err != nil {
		return consoleapi.DelayedCancel{}, err
	}
	return consoleapi.DelayedCancel{UID: uid, Mode: string(cn.Mode), Cancelled: !cn.InFlight, InFlight: cn.InFlight}, nil
}

// consoleTrace answers GET /stats/trace from the trace pipeline.
type consoleTrace struct{ p *tracer.Pipeline }

func (t consoleTrace) TraceStats(context.Context) (consoleapi.TraceStats, error) {
	s := t.p.Stats()
	return consoleapi.TraceStats{
		LagSeconds: s.Lag.Seconds(), Queued: s.QueueLen + s.OverflowLen, OutboxBytes: s.OutboxBytes,
		Recorded: s.Recorded, Written: s.Written + s.Replayed, Dropped: s.DroppedFull + s.DroppedClosed,
		SinkFailures: s.SinkFailures, Throttled: s.Throttled, StoreDegraded: s.OutboxBytes > 0,
	}, nil
}
