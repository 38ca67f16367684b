package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/consume"
	"github.com/pulsar-sidecar/pulsar-sidecar/durable"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// consoleDeadLetters reads the dead-letter topics of the subscriptions
// registered through the consume API and resends their messages through
// the durable sender (issue 15).
type consoleDeadLetters struct {
	svc    *consume.Service
	client pulsar.Client
	sender *durable.Sender
	rec    tracer.Recorder
	node   string
}

// deadLetterScan bounds how many messages of a dead-letter topic one
// listing or resend reads (a dead-letter topic may be shared by several
// subscriptions, and is read from its start).
const deadLetterScan = 10000

var _ consoleapi.DeadLetterProvider = consoleDeadLetters{}

func (p consoleDeadLetters) DeadLetterTopics(ctx context.Context, topic string) ([]consoleapi.DeadLetterTopic, error) {
	var subs []*consume.Subscription
	var err error
	if topic == "" {
		subs, err = p.svc.Registry().All(ctx)
	} else {
		tr, perr := consume.ParseTopicName(topic)
		if perr != nil {
			return nil, nil // non-persistent: the consume API registers none
		}
		subs, err = p.svc.ListSubscriptions(ctx, tr)
	}
	if err != nil {
		return nil, err
	}
	out := make([]consoleapi.DeadLetterTopic, 0, len(subs))
	for _, s := range subs {
		out = append(out, consoleapi.DeadLetterTopic{Topic: s.Ref().TopicName(), Subscription: s.Subscription,
			DeadLetterTopic: s.DeadLetterTopicRef().Name(), MaxDeliveries: s.MaxDeliveries})
	}
	return out, nil
}

// subscription returns the registration of topic's subscription, with
// the console's errors for the caller's mistakes.
func (p consoleDeadLetters) subscription(ctx context.Context, topic, name string) (*consume.Subscription, error) {
	tr, err := consume.ParseTopicName(topic)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", consoleapi.ErrInvalidTopic, consume.AsError(err).Message)
	}
	s, err := p.svc.GetSubscription(ctx, consume.SubscriptionRef{Tenant: tr.Tenant, Namespace: tr.Namespace, Topic: tr.Topic, Subscription: name})
	if err != nil {
		return nil, tagBacklogError(err)
	}
	return s, nil
}

// scan reads the subscription's dead-letter topic from its start and calls
// f with each message this subscription dead-lettered, until f returns
// false or the topic ends; it reports whether it stopped early.
func (p consoleDeadLetters) scan(ctx context.Context, s *consume.Subscription, f func(pulsar.Message) bool) (bool, error) {
	r, err := p.client.CreateReader(pulsar.ReaderOptions{Topic: s.DeadLetterTopicRef().Name(), StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		return false, fmt.Errorf("read dead-letter topic %s: %w", s.DeadLetterTopicRef().Name(), err)
	}
	defer r.Close()
	topic := s.Ref().TopicName()
	for n := 0; n < deadLetterScan && r.HasNext(); n++ {
		m, err := r.Next(ctx)
		if err != nil {
			return false, fmt.Errorf("read dead-letter topic %s: %w", s.DeadLetterTopicRef().Name(), err)
		}
		props := m.Properties()
		if props[consume.PropOriginalSubcription] != s.Subscription || props[consume.PropOriginalTopic] != topic {
			continue // another subscription's, in a shared dead-letter topic
		}
		if !f(m) {
			return true, nil
		}
	}
	return false, nil
}

func (p consoleDeadLetters) DeadLetters(ctx context.Context, topic, subscription string, limit int) ([]consoleapi.DeadLetter, bool, error) {
	s, err := p.subscription(ctx, topic, subscription)
	if err != nil {
		return nil, false, err
	}
	var out []consoleapi.DeadLetter
	more, err := p.scan(ctx, s, func(m pulsar.Message) bool {
		if len(out) == limit {
			return false
		}
		out = append(out, deadLetterView(m))
		return true
	})
	return out, more, err
}

func deadLetterView(m pulsar.Message) consoleapi.DeadLetter {
	props := m.Properties()
	user := map[string]string{}
	for k, v := range props {
		if !strings.HasPrefix(k, wire.ReservedPrefix) {
			user[k] = v
		}
	}
	n, _ := strconv.Atoi(props[consume.PropDeliveries])
	tags := wire.ParseTags(props[wire.PropTags])
	if tags == nil {
		tags = []string{}
	}
	return consoleapi.DeadLetter{
		MessageID: wire.FormatMessageID(m.ID()), UID: props[wire.PropUID], Key: m.Key(), Tags: tags, App: props[wire.PropApp],
		Reason: props[consume.PropDeadLetterReason], Deliveries: n, OriginalTopic: props[consume.PropOriginalTopic],
		OriginalMessageID: props[consume.PropOriginalMessageID], OriginalCluster: props[consume.PropOriginalCluster],
		PublishTime: m.PublishTime().UTC(), PayloadBytes: len(m.Payload()), Properties: user,
	}
}

func (p consoleDeadLetters) ExportDeadLetters(ctx context.Context, topic, subscription string, f func(consoleapi.DeadLetter, []byte) error) error {
	s, err := p.subscription(ctx, topic, subscription)
	if err != nil {
		return err
	}
	var ferr error
	if _, err := p.scan(ctx, s, func(m pulsar.Message) bool {
		ferr = f(deadLetterView(m), m.Payload())
		return ferr == nil
	}); err != nil {
		return err
	}
	return ferr
}

// Resend finds the dead letters by id, lets the subscription deliver
// their uid again (consume.ForgetDeadLetter), and publishes each to its
// original topic through the durable sender (retry, failover, spool) as
// the message it was: uid, app, key, tags, user properties, event time,
// payload, idempotency key, retry plan and step. A persisted event with
// resentFrom, deadLetterTopic and resentBy goes to the trace.
func (p consoleDeadLetters) Resend(ctx context.Context, topic, subscription string, ids []string, by string) ([]consoleapi.ResendResult, error) {
	s, err := p.subscription(ctx, topic, subscription)
	if err != nil {
		return nil, err
	}
	want := map[string]pulsar.Message{}
	for _, id := range ids {
		want[id] = nil
	}
	left := len(ids)
	if _, err := p.scan(ctx, s, func(m pulsar.Message) bool {
		id := wire.FormatMessageID(m.ID())
		if got, ok := want[id]; ok && got == nil {
			want[id] = m
			left--
		}
		return left > 0
	}); err != nil {
		return nil, err
	}
	out := make([]consoleapi.ResendResult, len(ids))
	for i, id := range ids {
		m := want[id]
		if m == nil {
			out[i] = consoleapi.ResendResult{MessageID: id, Status: "not_found"}
			continue
		}
		out[i] = p.resendOne(ctx, s, m, by)
	}
	return out, nil
}

func (p consoleDeadLetters) resendOne(ctx context.Context, s *consume.Subscription, m pulsar.Message, by string) consoleapi.ResendResult {
	props := m.Properties()
	dlqID := wire.FormatMessageID(m.ID())
	res := consoleapi.ResendResult{MessageID: dlqID, UID: props[wire.PropUID]}
	fail := func(err error) consoleapi.ResendResult {
		res.Status, res.Error = "failed", err.Error()
		return res
	}
	if res.UID == "" {
		return fail(errors.New("the dead letter has no psc-uid"))
	}
	// First the subscription's memory of the dead letter, so the copy is
	// not taken for a duplicate of a message it is done with.
	if _, err := p.svc.ForgetDeadLetter(ctx, s.Ref(), props); err != nil {
		return fail(err)
	}
	msg := resentMessage(s.Ref().TopicName(), m, time.Now())
	type sent struct {
		rc  produce.Receipt
		err error
	}
	done := make(chan sent, 1)
	start := time.Now()
	p.sender.SendAsync(ctx, msg, func(rc produce.Receipt, err error) { done <- sent{rc, err} })
	var got sent
	select {
	case got = <-done:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if got.err != nil {
		return fail(got.err)
	}
	res.Status, res.NewMessageID, res.Cluster = "resent", got.rc.MessageID, got.rc.Cluster
	if got.rc.Status != produce.StatusFailover && got.rc.Status != produce.StatusSpooled && p.rec != nil {
		// A failed-over or spooled copy's events come from the durable
		// sender, as for any produce.
		p.rec.Record(tracer.Event{Type: tracer.Persisted, UID: msg.UID, MessageID: got.rc.MessageID, Topic: msg.Topic,
			Key: msg.Key, Tags: msg.Tags, App: msg.App, Node: p.node, Cluster: got.rc.Cluster, Time: time.Now(),
			Latency: time.Since(start), Subscription: s.Subscription,
			Properties: map[string]string{"resentFrom": dlqID, "deadLetterTopic": s.DeadLetterTopicRef().Name(), "resentBy": by}})
	}
	return res
}

// resentMessage is the produce.Message that puts a dead letter back on
// its topic as it was first produced. The dead-letter properties are
// dropped; psc-retry-step stays, so the copy has the delivery state the
// subscription dead-lettered (and ForgetDeadLetter removed).
func resentMessage(topic string, m pulsar.Message, now time.Time) *produce.Message {
	props := m.Properties()
	msg := &produce.Message{UID: props[wire.PropUID], App: props[wire.PropApp], Topic: topic, Key: m.Key(),
		Tags: wire.ParseTags(props[wire.PropTags]), EventTime: m.EventTime(), Payload: m.Payload(),
		IdempotencyKey: props[wire.PropIdempotencyKey], RetryPlan: props[wire.PropRetryPlan], AcceptedAt: now}
	if t, err := time.Parse(wire.TimeLayout, props[wire.PropAcceptedAt]); err == nil {
		msg.AcceptedAt = t
	}
	user := map[string]string{}
	for k, v := range props {
		if !strings.HasPrefix(k, wire.ReservedPrefix) {
			user[k] = v
		}
	}
	if step := props[wire.PropRetryStep]; step != "" {
		user[wire.PropRetryStep] = step
	}
	if len(user) > 0 {
		msg.Properties = maps.Clone(user)
	}
	return msg
}
