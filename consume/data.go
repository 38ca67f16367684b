package consume

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/redis/go-redis/v9"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// TimeLayout formats publishTime and eventTime: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// ReceiveRequest is the body of POST .../receive.
type ReceiveRequest struct {
	// Max is the most messages to return: 1 to Options.Limits.MaxReceive; 0 means
	// Options.Limits.DefaultReceive.
	Max int `json:"max,omitempty"`
	// WaitMs is how long to wait for a first message: 0 (answer at once) to
	// Options.Limits.MaxWait.
	WaitMs int `json:"waitMs,omitempty"`
	// Consumer names the worker that receives (a host, a PHP-FPM pool and
	// pid...): 1 to MaxConsumerNameBytes printable bytes. The delivered
	// events record it, and the app's name when it is empty.
	Consumer string `json:"consumer,omitempty"`
}

// ReceiveResponse answers a receive; Messages is never null.
type ReceiveResponse struct {
	Messages []Message `json:"messages"`
}

// Message is one delivered message.
type Message struct {
	// AckID acknowledges (or nacks) this delivery, on any replica.
	AckID     string `json:"ackId"`
	UID       string `json:"uid,omitempty"`
	MessageID string `json:"messageId"`
	// Cluster is where the message was read, when there is more than one.
	Cluster string `json:"cluster,omitempty"`
	// Payload holds a UTF-8 payload; anything else is in PayloadBase64.
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 string  `json:"payloadBase64,omitempty"`
	Key           string  `json:"key,omitempty"`
	// App is the producing app (psc-app); empty for a message from a
	// producer that did not set it.
	App string `json:"app,omitempty"`
	// IdempotencyKey is the key the producer gave (psc-idempotency-key).
	// Copies of one (app, idempotency key) are one message: bill once.
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	// DuplicateRisk is true when the message was produced while the
	// idempotency store was unreachable (psc-duplicate-risk, ADR 030): an
	// earlier copy under another uid may exist.
	DuplicateRisk bool              `json:"duplicateRisk"`
	Tags          []string          `json:"tags,omitempty"`
	Properties    map[string]string `json:"properties,omitempty"` // without psc-* properties
	PublishTime   string            `json:"publishTime"`
	EventTime     string            `json:"eventTime,omitempty"`
	// RedeliveryCount is 0 on the first delivery.
	RedeliveryCount int `json:"redeliveryCount"`
	// DeadLetter says why and from where a message read from a dead-letter
	// topic came there.
	DeadLetter *DeadLetterInfo `json:"deadLetter,omitempty"`
}

// DeadLetterInfo is what the engine recorded when it dead-lettered a message.
type DeadLetterInfo struct {
	Reason            string `json:"reason"`
	OriginalMessageID string `json:"originalMessageId,omitempty"`
	OriginalTopic     string `json:"originalTopic,omitempty"`
	OriginalCluster   string `json:"originalCluster,omitempty"`
	Subscription      string `json:"subscription,omitempty"`
	Deliveries        int    `json:"deliveries,omitempty"`
}

// AckRequest is the body of POST .../ack.
type AckRequest struct {
	AckIDs []string `json:"ackIds"`
	// Consumer names the worker, as in ReceiveRequest.
	Consumer string `json:"consumer,omitempty"`
}

// AckResponse counts what an ack did. An ack is idempotent: acknowledging
// twice, or a message that was delivered again since, is fine.
type AckResponse struct {
	Acked int `json:"acked"`
	// Ignored were acknowledged before or dead-lettered.
	Ignored int `json:"ignored"`
}

// NackRequest is the body of POST .../nack.
type NackRequest struct {
	AckIDs []string `json:"ackIds"`
	// Consumer names the worker, as in ReceiveRequest.
	Consumer string `json:"consumer,omitempty"`
	// RedeliverAfter is a Go duration (0 to Options.Limits.MaxRedeliverAfter); the
	// messages come back after it. Empty means at once.
	RedeliverAfter string `json:"redeliverAfter,omitempty"`
	// Retry follows each message's retry plan (psc-retry-plan) instead:
	// the message is re-published, due at the plan's next step, and this
	// copy acknowledged; with the plan used up it is dead-lettered. A
	// message without a plan is nacked as without retry (back at once).
	// Not with RedeliverAfter.
	Retry bool `json:"retry,omitempty"`
}

// NackResponse counts what a nack did.
type NackResponse struct {
	Nacked int `json:"nacked"`
	// Ignored were acknowledged, dead-lettered, or delivered again since
	// these ackIds were issued.
	Ignored int `json:"ignored"`
	// Retried (retry only) were re-published for the plan's next step;
	// DeadLettered had used up their plan. Both are also in Nacked, as
	// are messages held by another replica, which that replica retries.
	Retried      int `json:"retried,omitempty"`
	DeadLettered int `json:"deadLettered,omitempty"`
}

func toMessage(r *record, token string, n int, clusters int) Message {
	msg := r.msg
	m := Message{
		AckID: token, UID: r.uid, MessageID: wire.FormatMessageID(msg.ID()), Key: msg.Key(),
		Tags: r.tags, PublishTime: formatTime(msg.PublishTime()), RedeliveryCount: n - 1,
	}
	if clusters > 1 {
		m.Cluster = r.cc.cluster.Name
	}
	if p := msg.Payload(); utf8.Valid(p) {
		s := string(p)
		m.Payload = &s
	} else {
		m.PayloadBase64 = base64.StdEncoding.EncodeToString(p)
	}
	if et, ok := eventTime(msg); ok {
		m.EventTime = formatTime(et)
	}
	props := msg.Properties()
	m.App, m.IdempotencyKey = props[wire.PropApp], props[wire.PropIdempotencyKey]
	m.DuplicateRisk = props[wire.PropDuplicateRisk] == "true"
	if reason, ok := props[PropDeadLetterReason]; ok {
		n, _ := strconv.Atoi(props[PropDeliveries])
		m.DeadLetter = &DeadLetterInfo{Reason: reason, OriginalMessageID: props[PropOriginalMessageID],
			OriginalTopic: props[PropOriginalTopic], OriginalCluster: props[PropOriginalCluster],
			Subscription: props[PropOriginalSubcription], Deliveries: n}
	}
	for k, v := range props {
		if strings.HasPrefix(k, wire.ReservedPrefix) {
			continue
		}
		if m.Properties == nil {
			m.Properties = map[string]string{}
		}
		m.Properties[k] = v
	}
	return m
}

// Receive long-polls for messages that match the subscription's filter.
func (s *Service) Receive(ctx context.Context, ref SubscriptionRef, req ReceiveRequest, caller Caller) (*ReceiveResponse, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if err := caller.name(req.Consumer); err != nil {
		return nil, err
	}
	maxN := req.Max
	if maxN == 0 {
		maxN = s.opts.Limits.DefaultReceive
	}
	if maxN < 1 || maxN > s.opts.Limits.MaxReceive {
		return nil, badRequest(CodeInvalidMax, "max %d: want 1 to %d", req.Max, s.opts.Limits.MaxReceive)
	}
	wait := time.Duration(req.WaitMs) * time.Millisecond
	if req.WaitMs < 0 || wait > s.opts.Limits.MaxWait {
		return nil, badRequest(CodeInvalidWait, "waitMs %d: want 0 to %d", req.WaitMs, s.opts.Limits.MaxWait.Milliseconds())
	}
	cfg, err := s.config(ctx, ref)
	if err != nil {
		return nil, err
	}
	e, err := s.engineFor(cfg)
	if err != nil {
		return nil, err
	}
	msgs, err := e.receive(ctx, maxN, wait, caller)
	if err != nil {
		if AsError(err).Code == CodeStoreUnavailable {
			s.metrics.addStoreError()
		}
		return nil, err
	}
	if msgs == nil {
		msgs = []Message{}
	}
	return &ReceiveResponse{Messages: msgs}, nil
}

// checkAckIDs validates a batch of tokens for ref; any bad one rejects the
// whole request.
func (s *Service) checkAckIDs(ref SubscriptionRef, toks []string, now time.Time) ([]AckID, error) {
	if len(toks) == 0 || len(toks) > s.opts.Limits.MaxAckIDs {
		return nil, badRequest(CodeInvalidAckIDs, "ackIds has %d entries: want 1 to %d", len(toks), s.opts.Limits.MaxAckIDs)
	}
	binding := ref.binding()
	ids := make([]AckID, len(toks))
	for i, t := range toks {
		a, err := s.signer.check(t, binding, now)
		if err != nil {
			e := AsError(err)
			e.Message = fmt.Sprintf("ackIds[%d]: %s", i, e.Message)
			return nil, e
		}
		ids[i] = a
	}
	return ids, nil
}

// Ack acknowledges deliveries. It is recorded in Redis (so every replica
// honours it from then on) and applied on the broker by the replica that
// holds the message: this one, or the one that handed it out, told over
// Redis pub/sub. If that replica is gone, its consumer's messages go back
// to the broker, and the next replica to receive this one acknowledges it
// instead of handing it out.
func (s *Service) Ack(ctx context.Context, ref SubscriptionRef, req AckRequest, caller Caller) (*AckResponse, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if err := caller.name(req.Consumer); err != nil {
		return nil, err
	}
	cfg, err := s.config(ctx, ref)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	ids, err := s.checkAckIDs(ref, req.AckIDs, now)
	if err != nil {
		return nil, err
	}
	ids, toks, stale, err := s.withoutStale(ctx, ref, ids, req.AckIDs) // reset.go
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return &AckResponse{Ignored: stale}, nil
	}
	args := make([]any, 0, 1+2*len(ids))
	args = append(args, s.states.widthArg())
	for i := range ids {
		args = append(args, ids[i].stateID())
	}
	for i := range ids {
		args = append(args, ids[i].copy().String())
	}
	vals, err := s.states.eval(ctx, ackScript, s.states.space(ref.binding(), cfg.ackTimeout), len(ids), args, 1)
	if err != nil {
		s.metrics.addStoreError()
		return nil, storeError(err)
	}
	resp := &AckResponse{Ignored: stale}
	var local []copyKey
	remote := map[uint64][]string{}
	for i, v := range vals {
		if v == ackDone {
			resp.Acked++
			s.traceAck(tracer.Acked, ref, &ids[i], caller, "")
		} else {
			resp.Ignored++
		}
		if v == ackDone || v == ackAlready {
			local = append(local, ids[i].copy())
			if ids[i].Node != s.node {
				remote[ids[i].Node] = append(remote[ids[i].Node], toks[i])
			}
		}
	}
	if e := s.existingEngine(ref.Path()); e != nil && len(local) > 0 {
		e.ackLocal(local)
	}
	s.tellPeers(ctx, "ack", ref.Path(), remote, 0)
	return resp, nil
}

// Nack ends deliveries early: the messages come back after redeliverAfter
// (at once when it is empty), counting as another delivery.
func (s *Service) Nack(ctx context.Context, ref SubscriptionRef, req NackRequest, caller Caller) (*NackResponse, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if err := caller.name(req.Consumer); err != nil {
		return nil, err
	}
	if req.Retry && req.RedeliverAfter != "" {
		return nil, badRequest(CodeInvalidRedeliverAfter, "give redeliverAfter or retry, not both: retry follows the message's retry plan")
	}
	if req.Retry && s.opts.Retry == nil {
		return nil, badRequest(CodeRetryUnavailable, "retry is not available on this sidecar (no delayed delivery)")
	}
	var delay time.Duration
	if req.RedeliverAfter != "" {
		d, err := time.ParseDuration(req.RedeliverAfter)
		if err != nil || d < 0 || d > s.opts.Limits.MaxRedeliverAfter {
			return nil, badRequest(CodeInvalidRedeliverAfter, "redeliverAfter %q: want a Go duration from 0s to %s, such as \"5s\"",
				clip(req.RedeliverAfter, 40), s.opts.Limits.MaxRedeliverAfter)
		}
		delay = d
	}
	cfg, err := s.config(ctx, ref)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	ids, err := s.checkAckIDs(ref, req.AckIDs, now)
	if err != nil {
		return nil, err
	}
	ids, toks, stale, err := s.withoutStale(ctx, ref, ids, req.AckIDs) // reset.go
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return &NackResponse{Ignored: stale}, nil
	}
	var resp *NackResponse
	if req.Retry {
		resp, err = s.nackRetry(ctx, ref, cfg, ids, toks, caller)
	} else {
		resp, err = s.nackIDs(ctx, ref, cfg, ids, toks, caller, delay)
	}
	if resp != nil {
		resp.Ignored += stale
	}
	return resp, err
}

// nackIDs runs the nack script for ids and ends their leases at now+delay.
func (s *Service) nackIDs(ctx context.Context, ref SubscriptionRef, cfg *Subscription, ids []AckID, toks []string, caller Caller, delay time.Duration) (*NackResponse, error) {
	now := s.clock.Now()
	args := make([]any, 0, 4+3*len(ids))
	args = append(args, s.states.widthArg(), now.UnixMilli(), delay.Milliseconds(), s.leaseKeep(cfg.ackTimeout).Milliseconds())
	for i := range ids {
		args = append(args, ids[i].stateID())
	}
	for i := range ids {
		args = append(args, ids[i].copy().String())
	}
	for i := range ids {
		args = append(args, ids[i].Delivery)
	}
	vals, err := s.states.eval(ctx, nackScript, s.states.space(ref.binding(), cfg.ackTimeout), len(ids), args, 1)
	if err != nil {
		s.metrics.addStoreError()
		return nil, storeError(err)
	}
	resp := &NackResponse{}
	due := now.Add(delay)
	e := s.existingEngine(ref.Path())
	remote := map[uint64][]string{}
	for i := range ids { // eval answered one value per id
		if vals[i] != 1 {
			resp.Ignored++
			continue
		}
		resp.Nacked++
		s.traceAck(tracer.Nacked, ref, &ids[i], caller, "redeliverAfter "+delay.String())
		if e != nil && e.nackLocal(ids[i].copy(), ids[i].Delivery, due) {
			continue
		}
		if ids[i].Node != s.node {
			remote[ids[i].Node] = append(remote[ids[i].Node], toks[i])
		}
	}
	s.tellPeers(ctx, "nack", ref.Path(), remote, due.UnixMilli())
	return resp, nil
}

// --- peers ---

// peerMessage tells the replica that handed messages out that they were
// acknowledged or nacked elsewhere. It is an optimisation: a lost one only
// delays the broker ack (or the redelivery) until the holder's lease timer
// looks at the delivery state.
type peerMessage struct {
	Op     string   `json:"op"` // ack, nack, retry or reset
	Path   string   `json:"path"`
	AckIDs []string `json:"ackIds"`
	Due    int64    `json:"due,omitempty"` // nack: Unix ms
}

func (s *Service) nodeChannel(node uint64) string {
	return s.opts.State.KeyPrefix + "consume:node:" + bindingHex(node)
}

func (s *Service) tellPeers(ctx context.Context, op, path string, byNode map[uint64][]string, due int64) {
	if len(byNode) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.State.RedisTimeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	for node, toks := range byNode {
		b, err := json.Marshal(peerMessage{Op: op, Path: path, AckIDs: toks, Due: due})
		if err != nil {
			continue
		}
		pipe.Publish(ctx, s.nodeChannel(node), b)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Warn("telling peers failed; their lease timers will catch up", "op", op, "err", err)
	}
}

func (s *Service) peerLoop(ch <-chan *redis.Message) {
	for m := range ch {
		var pm peerMessage
		if err := json.Unmarshal([]byte(m.Payload), &pm); err != nil {
			s.log.Warn("malformed peer message", "err", err)
			continue
		}
		s.handlePeer(pm)
	}
}

func (s *Service) handlePeer(pm peerMessage) {
	e := s.existingEngine(pm.Path)
	if e == nil {
		return
	}
	var keys []copyKey
	if pm.Op == peerReset { // reset.go
		s.dropEngine(pm.Path)
		return
	}
	for _, t := range pm.AckIDs {
		a, err := s.signer.Decode(t)
		if err != nil || a.Binding != e.binding {
			continue
		}
		switch pm.Op {
		case "ack":
			keys = append(keys, a.copy())
		case "nack":
			e.nackLocal(a.copy(), a.Delivery, time.UnixMilli(pm.Due))
		case "retry":
			s.retryPeer(e, a, t)
		}
	}
	if len(keys) > 0 {
		e.ackLocal(keys)
	}
}

// --- trace ---

type traceKind int

const (
	traceDelivered traceKind = iota
	traceFiltered
	traceDeadLettered
)

func (s *Service) trace(kind traceKind, e *engine, msg pulsar.Message, cc *clusterConsumer, tags []string, n int, caller Caller, errText string) {
	if _, nop := s.rec.(tracer.Nop); nop {
		return
	}
	props := msg.Properties()
	ev := tracer.Event{
		UID: props[wire.PropUID], MessageID: wire.FormatMessageID(msg.ID()), Topic: e.ref.TopicName(), Key: msg.Key(),
		Tags: tags, Node: s.opts.Node, Cluster: cc.cluster.Name, Subscription: e.ref.Subscription,
		Time: s.clock.Now(), Error: errText,
	}
	switch kind {
	case traceDelivered:
		ev.Type = tracer.Delivered
		if n > 1 {
			ev.Type = tracer.Redelivered
		}
		ev.Attempt = n - 1
		ev.Consumer, ev.App, ev.ClientIP = caller.consumer(), caller.App, caller.ClientIP
	case traceFiltered:
		ev.Type = tracer.Filtered
	case traceDeadLettered:
		ev.Type = tracer.DeadLettered
		ev.Attempt = n
		ev.Properties = map[string]string{"deadLetterTopic": e.cfg.Load().dlq.Name()}
	}
	if ev.UID == "" {
		ev.UID = "m:" + ev.MessageID
	}
	s.rec.Record(ev)
}

func (s *Service) traceAck(typ tracer.Type, ref SubscriptionRef, a *AckID, caller Caller, errText string) {
	if _, nop := s.rec.(tracer.Nop); nop {
		return
	}
	uid := a.UID
	if uid == "" {
		uid = "m:" + a.MessageID()
	}
	cluster := ""
	if int(a.Cluster) < len(s.opts.Clusters) {
		cluster = s.opts.Clusters[a.Cluster].Name
	}
	s.rec.Record(tracer.Event{
		Type: typ, UID: uid, MessageID: a.MessageID(), Topic: ref.TopicName(), Node: s.opts.Node, Cluster: cluster,
		Subscription: ref.Subscription, Consumer: caller.consumer(), App: caller.App, ClientIP: caller.ClientIP,
		Time: s.clock.Now(), Attempt: a.Delivery - 1, Error: errText,
	})
}

// eventTime is the message's event time, if its producer set one.
// pulsar-client-go gives the Unix epoch, not the zero time, for a message
// without one, so IsZero cannot tell.
func eventTime(msg pulsar.Message) (time.Time, bool) {
	et := msg.EventTime()
	return et, et.UnixMilli() > 0
}
