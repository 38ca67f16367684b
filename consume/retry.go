package consume

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// RetryMessage is a message nacked with "retry", to be re-published to its
// topic for the next step of its retry plan. It keeps its uid; Properties
// are the original ones (psc-* included) with psc-retry-step counted, so
// the new copy has its own delivery state (stateIDFor).
type RetryMessage struct {
	UID        string
	App        string // the producing app (psc-app)
	Topic      string // full name
	Key        string
	Tags       []string
	Properties map[string]string
	Payload    []byte
	EventTime  time.Time // zero: none
	DueAt      time.Time // never earlier than now plus the step's delay
	Step       int       // the retry this is: 1 for the first
}

// claimScript takes a leased delivery for a retry: while the message is
// re-published (or dead-lettered) it is held as 'x', so no replica hands
// it out. Only the latest delivery of the copy may do that. ARGV: width,
// now ms, hold ms, keep ms, state id, copy id, delivery. Returns {1} or {0}.
var claimScript = redis.NewScript(statePrelude + `
local now, hold, keep = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local v = lookup({ARGV[5]})[1]
if v then
  local st, cnt, _, nd, cur = parse(v)
  if st == 'l' and cur == ARGV[6] and cnt == tonumber(ARGV[7]) then
    local need = math.max(nd, rnow + hold + keep)
    put(ARGV[5], 'x|' .. cnt .. '|' .. (now + hold) .. '|' .. need .. '|' .. cur, need)
    flush()
    return {1}
  end
end
return {0}
`)

// ackHeldScript records the ack of a message claimed for a retry once its
// next copy is scheduled. ARGV: width, state id. Returns {1} or {0}.
var ackHeldScript = redis.NewScript(statePrelude + `
local v = lookup({ARGV[2]})[1]
if v and string.sub(v, 1, 1) == 'x' then
  local _, _, _, nd = parse(v)
  put(ARGV[2], 'a' .. string.sub(v, 2), math.max(nd, rnow))
  flush()
  return {1}
end
return {0}
`)

func init() { allScripts = append(allScripts, claimScript, ackHeldScript) }

// ReasonRetryPlanExhausted is the dead-letter reason of a message nacked
// with retry after the last step of its plan.
const ReasonRetryPlanExhausted = "retry plan exhausted"

type retryOutcome int

const (
	retryNotHeld      retryOutcome = iota // this replica does not hold that delivery
	retryNoPlan                           // no plan: nack it as without retry
	retryScheduled                        // re-published for the next step; this copy acknowledged
	retryDeadLettered                     // plan used up or unreadable: on its way to the dead-letter topic
	retryFailed                           // the re-publish failed: it comes back after the hold
)

// nackRetry is Nack with retry: each message held here follows its plan;
// messages held by another replica are passed to it; messages without a
// plan are nacked as without retry.
func (s *Service) nackRetry(ctx context.Context, ref SubscriptionRef, cfg *Subscription, ids []AckID, toks []string, caller Caller) (*NackResponse, error) {
	resp := &NackResponse{}
	e := s.existingEngine(ref.Path())
	remote := map[uint64][]string{}
	var plainIDs []AckID
	var plainToks []string
	for i := range ids {
		out := retryNotHeld
		if e != nil {
			var err error
			if out, err = s.retryHeld(ctx, e, &ids[i], caller); err != nil {
				return nil, err
			}
		}
		switch out {
		case retryScheduled:
			resp.Nacked++
			resp.Retried++
		case retryDeadLettered:
			resp.Nacked++
			resp.DeadLettered++
		case retryFailed:
			resp.Nacked++
		case retryNoPlan:
			plainIDs, plainToks = append(plainIDs, ids[i]), append(plainToks, toks[i])
		case retryNotHeld:
			if ids[i].Node != s.node {
				resp.Nacked++
				remote[ids[i].Node] = append(remote[ids[i].Node], toks[i])
			} else {
				resp.Ignored++
			}
		}
	}
	if len(plainIDs) > 0 {
		plain, err := s.nackIDs(ctx, ref, cfg, plainIDs, plainToks, caller, 0)
		if err != nil {
			return nil, err
		}
		resp.Nacked += plain.Nacked
		resp.Ignored += plain.Ignored
	}
	s.tellPeers(ctx, "retry", ref.Path(), remote, 0)
	return resp, nil
}

// retryPeer handles a retry another replica was asked for, for a message
// this one handed out. A lost or failed one leaves the lease to run out:
// the message comes back as after a plain nack.
func (s *Service) retryPeer(e *engine, a AckID, tok string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.DeadLetter.Timeout)
	defer cancel()
	out, err := s.retryHeld(ctx, e, &a, Caller{})
	if err != nil {
		s.log.Warn("retry for a peer", "err", err)
		return
	}
	if out == retryNoPlan {
		if _, err := s.nackIDs(ctx, e.ref, e.cfg.Load(), []AckID{a}, []string{tok}, Caller{}, 0); err != nil {
			s.log.Warn("nack for a peer", "err", err)
		}
	}
}

// retryHeld follows the retry plan of a delivery this replica holds.
func (s *Service) retryHeld(ctx context.Context, e *engine, a *AckID, caller Caller) (retryOutcome, error) {
	k := a.copy()
	e.mu.Lock()
	r := e.records[k]
	if r == nil || r.state != stInflight || r.n != a.Delivery {
		e.mu.Unlock()
		return retryNotHeld, nil
	}
	e.mu.Unlock()

	now := s.clock.Now()
	props := r.msg.Properties()
	due, next, ok, planErr := delay.NextRetry(props, now)
	if errors.Is(planErr, delay.ErrNoRetryPlan) {
		return retryNoPlan, nil
	}
	cfg := e.cfg.Load()
	hold := s.opts.DeadLetter.Lease
	vals, err := s.states.eval(ctx, claimScript, s.states.space(e.binding, cfg.ackTimeout), 1,
		[]any{s.states.widthArg(), now.UnixMilli(), hold.Milliseconds(), s.leaseKeep(cfg.ackTimeout).Milliseconds(), r.stateID, k.String(), a.Delivery}, 1)
	if err != nil {
		s.metrics.addStoreError()
		return retryNotHeld, storeError(err)
	}
	if vals[0] != 1 {
		return retryNotHeld, nil
	}
	e.mu.Lock()
	if r.state != stInflight || r.n != a.Delivery {
		// The lease ran out meanwhile; the 'x' hold keeps others off
		// until it ends, and then the message is leased again.
		e.mu.Unlock()
		return retryNotHeld, nil
	}
	r.state = stDeadLettering // held: the lease timer leaves it alone
	e.timers.unschedule(r)
	e.mu.Unlock()

	if !ok {
		r.reason = ReasonRetryPlanExhausted
		if planErr != nil {
			r.reason = "retry plan unreadable: " + planErr.Error()
		}
		s.traceAck(tracer.Nacked, e.ref, a, caller, "retry: "+r.reason)
		select {
		case e.dlqJobs <- r:
		default:
			e.schedule(r, stHeld, now.Add(hold))
		}
		return retryDeadLettered, nil
	}

	m := RetryMessage{
		UID: r.uid, App: props[wire.PropApp], Topic: e.ref.TopicName(), Key: r.msg.Key(), Tags: r.tags,
		Properties: next, Payload: r.msg.Payload(), DueAt: due, Step: retryStepOf(next),
	}
	if et, ok := eventTime(r.msg); ok {
		m.EventTime = et
	}
	if err := s.opts.Retry(ctx, m); err != nil {
		s.log.Warn("retry: scheduling the next copy failed; the message comes back after the hold",
			"uid", r.uid, "topic", m.Topic, "hold", hold, "err", err)
		e.schedule(r, stHeld, now.Add(hold))
		return retryFailed, nil
	}
	if _, err := s.states.eval(ctx, ackHeldScript, s.states.space(e.binding, cfg.ackTimeout), 1, []any{s.states.widthArg(), r.stateID}, 1); err != nil {
		// The next copy is scheduled; when the hold ends this one is
		// delivered again too. Ack it on the broker all the same.
		s.log.Warn("retry: recording the ack", "uid", r.uid, "err", err)
	}
	s.traceAck(tracer.Nacked, e.ref, a, caller, "retry "+m.DueAt.Sub(now).String())
	e.mu.Lock()
	e.removeLocked(r)
	e.mu.Unlock()
	r.cc.ack(r.msg.ID())
	e.stats.add(outNacked, r.tags)
	return retryScheduled, nil
}
