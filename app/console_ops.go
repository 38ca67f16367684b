package app

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/consume"
	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/pulsaradm"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// consoleOps are the console's operations and the web page's extra stats
// (issue 15), over the running components.
func (a *App) consoleOps() consoleapi.Ops {
	var ops consoleapi.Ops
	if a.pipeline != nil {
		ops.Trace = consoleTrace{a.pipeline}
	}
	if a.consume != nil && a.durable != nil {
		ops.DeadLetters = consoleDeadLetters{svc: a.consume, client: a.consumerClient, sender: a.durable, rec: a.rec, node: a.cfg.Node}
	}
	if a.delay != nil {
		ops.Delayed = consoleDelayed{e: a.delay, maxDelay: a.cfg.Limits.MaxDelay}
	}
	if a.consume != nil && a.admin != nil {
		ops.Cursors = consoleCursors{svc: a.consume, admin: a.admin, rec: a.rec, node: a.cfg.Node}
	}
	if u := a.cfg.Console.PrometheusURL; u != "" {
		if p, err := consoleapi.NewPrometheusAlerts(u, nil); err == nil { // checked by config.Validate
			ops.Alerts = p
		}
	}
	return ops
}

// consoleDelayed lists the wheel's scheduled messages from its index in
// Redis (every replica's).
type consoleDelayed struct {
	e        *delay.Engine
	maxDelay time.Duration // limits.maxDelay: a reschedule goes no further
}

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

// RescheduleDelayed moves a wheel message (delay.Engine.RescheduleBy). A
// level message waits in its level's topic and cannot be moved; a native
// one lives in Pulsar and is not found.
func (p consoleDelayed) RescheduleDelayed(ctx context.Context, uid string, due time.Time, by string) (consoleapi.Delayed, error) {
	if p.maxDelay > 0 && due.After(time.Now().Add(p.maxDelay)) {
		return consoleapi.Delayed{}, fmt.Errorf("%w: deliverAt %s is beyond limits.maxDelay (%s from now)", consoleapi.ErrInvalidTime,
			due.UTC().Format(time.RFC3339), p.maxDelay)
	}
	err := p.e.RescheduleBy(ctx, uid, due, by)
	switch {
	case errors.Is(err, delay.ErrLevelFixed):
		return consoleapi.Delayed{}, fmt.Errorf("%w: %s waits in a delay level's topic and cannot be moved: cancel it and produce it again", consoleapi.ErrNotReschedulable, uid)
	case errors.Is(err, delay.ErrInFlight):
		return consoleapi.Delayed{}, fmt.Errorf("%w: %w", consoleapi.ErrInFlight, err)
	case errors.Is(err, delay.ErrNotFound):
		return consoleapi.Delayed{}, fmt.Errorf("%w: %w", consoleapi.ErrNotFound, err)
	case err != nil:
		return consoleapi.Delayed{}, err
	}
	s, err := p.e.Get(ctx, uid)
	if err != nil {
		return consoleapi.Delayed{}, err
	}
	return delayedView(s), nil
}

// consoleCursors resets the cursors of the consume API's subscriptions on
// the primary cluster through its admin API (consume.Service.ResetCursor
// says what else a reset changes).
type consoleCursors struct {
	svc   *consume.Service
	admin *pulsaradm.Client
	rec   tracer.Recorder
	node  string
}

func (p consoleCursors) ResetCursor(ctx context.Context, topic, sub string, at time.Time, by string) (consoleapi.CursorReset, error) {
	tr, err := consume.ParseTopicName(topic)
	if err != nil {
		return consoleapi.CursorReset{}, fmt.Errorf("%w: %s", consoleapi.ErrInvalidTopic, consume.AsError(err).Message)
	}
	ref := consume.SubscriptionRef{Tenant: tr.Tenant, Namespace: tr.Namespace, Topic: tr.Topic, Subscription: sub}
	tn, err := utils.GetTopicName(ref.TopicName())
	if err != nil {
		return consoleapi.CursorReset{}, fmt.Errorf("%w: %v", consoleapi.ErrInvalidTopic, err) //nolint:errorlint // only its text
	}
	move := func(ctx context.Context) error {
		if err := p.admin.Admin().Subscriptions().ResetCursorToTimestampWithContext(ctx, *tn, sub, at.UnixMilli()); err != nil {
			return fmt.Errorf("%w: reset %s on %s: %w", consoleapi.ErrBrokerUnavailable, sub, tn.String(), err)
		}
		return nil
	}
	res, err := p.svc.ResetCursor(ctx, ref, at, move)
	if err != nil {
		return consoleapi.CursorReset{}, tagBacklogError(err)
	}
	op := produce.NewUID()
	p.rec.Record(tracer.Event{Type: tracer.CursorReset, UID: op, Topic: ref.TopicName(), Subscription: sub, App: by, Node: p.node,
		Time: time.Now(), Properties: map[string]string{"resetTo": at.UTC().Format(time.RFC3339Nano), "resetBy": by,
			"clearedStates": strconv.FormatInt(res.ClearedStates, 10)}})
	return consoleapi.CursorReset{Topic: ref.TopicName(), Subscription: sub, ResetTo: at.UTC(), OperationID: op,
		ClearedStates: res.ClearedStates, NotifiedReplicas: res.NotifiedReplicas}, nil
}
