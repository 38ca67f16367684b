package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// produceResponse is the 200 answer.
type produceResponse struct {
	Results []Result `json:"results"`
}

// handleProduce serves POST /v1/topics/{tenant}/{namespace}/{topic}/messages
// in its steps: authorize, decode (read, decode and validate everything),
// admit (rate limit), then produce (claim, send, complete) and answer. Any
// error before produce writes nothing.
func (s *Server) handleProduce(c *gin.Context) {
	p := c.MustGet(principalKey).(*principal)
	topic, err := s.authorize(p, c.Param("tenant"), c.Param("namespace"), c.Param("topic"))
	if err != nil {
		s.fail(c, err, nil)
		return
	}
	accepted := s.now()
	msgs, err := s.decode(c, topic, accepted)
	if err != nil {
		s.fail(c, err, nil)
		return
	}
	if err := s.admit(p, len(msgs)); err != nil {
		s.fail(c, err, nil)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.RequestTimeout)
	defer cancel()
	results, err := s.produce(ctx, p.name, c.ClientIP(), msgs, accepted)
	if err != nil {
		s.fail(c, err, results)
		return
	}
	writeProduceAnswer(c.Writer, results)
}

// authorize checks that the app may produce to the topic and returns its
// full name.
func (s *Server) authorize(p *principal, tenant, ns, local string) (string, error) {
	topic, err := TopicName(tenant, ns, local)
	if err != nil {
		return "", err
	}
	if !p.mayProduce(tenant, ns, local) {
		return "", errorf(http.StatusForbidden, CodeForbidden, "app %q may not produce to %s/%s/%s", p.name, tenant, ns, local)
	}
	if IsInternalTopic(tenant, ns, local) {
		return "", internalTopic(tenant, ns, local)
	}
	return topic, nil
}

// decode reads the request, raw or JSON batch form, into validated
// messages.
func (s *Server) decode(c *gin.Context, topic string, accepted time.Time) ([]*produce.Message, error) {
	lim := &s.opts.Limits
	var msgs []*produce.Message
	if IsBatchRequest(c.Request) {
		if c.GetHeader(HeaderIdempotencyKey) != "" {
			// Ignoring it would leave the caller believing its retries are safe.
			return nil, badRequest(CodeInvalidIdempotencyKey, "the %s header belongs to the raw form; in the JSON batch form give each message its idempotencyKey",
				HeaderIdempotencyKey)
		}
		body, err := readBody(c, lim.MaxRequestBytes, CodeRequestTooLarge, "the request body")
		if err != nil {
			return nil, err
		}
		if msgs, err = DecodeBatch(body, topic, lim, accepted); err != nil {
			return nil, err
		}
	} else {
		body, err := readBody(c, lim.MaxPayloadBytes, CodePayloadTooLarge, "the payload")
		if err != nil {
			return nil, err
		}
		m, err := DecodeRaw(c.Request.Header, body, topic, lim, accepted)
		if err != nil {
			return nil, err
		}
		msgs = []*produce.Message{m}
	}
	return msgs, s.checkDelayLevels(msgs)
}

// checkDelayLevels refuses a delayLevel this sidecar cannot serve.
func (s *Server) checkDelayLevels(msgs []*produce.Message) error {
	for i, m := range msgs {
		if m.DelayLevel == "" {
			continue
		}
		if s.opts.Scheduler == nil {
			return errorf(http.StatusNotImplemented, CodeDelayLevelUnavailable,
				"messages[%d]: delay levels are not available on this sidecar yet; use deliverAfter or deliverAt", i)
		}
		if !s.opts.Scheduler.HasLevel(m.DelayLevel) {
			return badRequest(CodeInvalidDelay, "messages[%d].delayLevel: %q is not a configured level", i, truncate(m.DelayLevel, 40))
		}
	}
	return nil
}

// admit takes n messages from the app's rate limit.
func (s *Server) admit(p *principal, n int) error {
	if p.limiter == nil {
		return nil
	}
	if wait, ok := p.limiter.take(n); !ok {
		s.metrics.addRateLimited(p.name)
		return rateLimited(p.name, wait)
	}
	return nil
}

// readBody reads at most limit bytes; a longer body is a 413 with code.
func readBody(c *gin.Context, limit int64, code, what string) ([]byte, error) {
	r := c.Request
	if r.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, code, "%s is %d bytes, the limit is %d", what, r.ContentLength, limit)
	}
	if r.ContentLength >= 0 {
		// The length is known and within the limit, and net/http never
		// reads past it: read it into a buffer of exactly that size.
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, badRequest(CodeInvalidJSON, "reading the request body failed: %v", err)
		}
		return body, nil
	}
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(c.Writer, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errorf(http.StatusRequestEntityTooLarge, code, "%s is larger than %d bytes", what, limit)
	case err != nil && !errors.Is(err, io.EOF):
		return nil, badRequest(CodeInvalidJSON, "reading the request body failed: %v", err)
	}
	return buf.Bytes(), nil
}

// pendingMessage is one message of a request on its way.
type pendingMessage struct {
	idx       int
	m         *produce.Message
	fp        string
	claim     Claim // State is ClaimAcquired when this request owns the key
	scheduled bool  // handed to the Scheduler, which records the scheduled event
	// settled is set when the broker's answer is in and the claim's
	// record is being written: the lease needs no renewal any more.
	settled atomic.Bool
	// leaseHeld: the request's leaseKeeper still renews this claim (read
	// and written only by the goroutine holding the keeper).
	leaseHeld bool
}

// outcome is one message's answer from the sender and, for a claimed
// key that was stored, from the idempotency store.
type outcome struct {
	p       *pendingMessage
	rc      produce.Receipt
	err     error
	latency time.Duration // hand-over to the broker's answer
	// completed: the result was recorded in the idempotency store (Complete,
	// run from the sender's callback); completeErr is that call's error.
	completed   bool
	completeErr error
}

// produceRun is one request's produce path, in steps: claim (the
// idempotency keys), send, complete (each outcome recorded in the store
// and the trace), answer.
type produceRun struct {
	s        *Server
	ctx      context.Context
	app      string
	clientIP string
	msgs     []*produce.Message
	accepted time.Time

	pending  []pendingMessage
	results  []Result
	done     []bool
	toSend   []*pendingMessage
	busy     []*pendingMessage // keys another request holds
	acquired []*pendingMessage // keys this request claimed
	ch       chan outcome
	firstErr error

	// Storage of a one-message request (the raw form): its slices need no
	// allocation of their own.
	one struct {
		pending [1]pendingMessage
		result  [1]Result
		done    [1]bool
		toSend  [1]*pendingMessage
		claimed [1]*pendingMessage
	}
}

// produce runs the produce path for validated messages: idempotency
// claims, then the sender (or the scheduler for delay levels), then the
// outcome of each message. It returns one Result per message. The error is
// non-nil when any message is not durable; results then say which are.
func (s *Server) produce(ctx context.Context, app, clientIP string, msgs []*produce.Message, accepted time.Time) ([]Result, error) {
	r := &produceRun{s: s, ctx: ctx, app: app, clientIP: clientIP, msgs: msgs, accepted: accepted}
	if len(msgs) == 1 {
		r.pending, r.results, r.done, r.toSend = r.one.pending[:], r.one.result[:], r.one.done[:], r.one.toSend[:0]
		r.acquired = r.one.claimed[:0]
	} else {
		r.pending, r.results, r.done = make([]pendingMessage, len(msgs)), make([]Result, len(msgs)), make([]bool, len(msgs))
		r.toSend = make([]*pendingMessage, 0, len(msgs))
	}
	if err := r.claim(); err != nil {
		r.abort()
		return nil, err
	}
	r.send()
	r.collect()
	return r.answer()
}

// claim gives every message its uid and claims its idempotency key, then
// waits for keys another request holds. An error refuses the request (the
// caller releases what was claimed).
func (r *produceRun) claim() error {
	for i, m := range r.msgs {
		m.App, m.AcceptedAt = r.app, r.accepted
		p := &r.pending[i]
		p.idx, p.m = i, m
		if m.IdempotencyKey == "" {
			m.UID = produce.NewUID()
			r.toSend = append(r.toSend, p)
			continue
		}
		p.fp = m.Fingerprint()
		m.UID = produce.KeyedUID(r.app, m.IdempotencyKey, p.fp)
		if r.s.opts.Idempotency == nil {
			m.DuplicateRisk = true
			r.toSend = append(r.toSend, p)
			continue
		}
		if err := r.claimKey(p); err != nil {
			return err
		}
	}
	return r.waitBusy()
}

// claimKey asks the store about p's key and files p by the answer; an
// error refuses the request (key reused, or the request ended).
func (r *produceRun) claimKey(p *pendingMessage) error {
	s := r.s
	cl, err := s.opts.Idempotency.Begin(r.ctx, r.app, p.m.IdempotencyKey, p.fp, p.m.UID)
	if err != nil {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		s.metrics.addIdemUnavailable()
		s.log.Warn("idempotency store unreachable: producing with duplicateRisk", "app", r.app, "key", p.m.IdempotencyKey, "err", err)
		p.m.DuplicateRisk = true
		r.toSend = append(r.toSend, p)
		return nil
	}
	switch cl.State {
	case ClaimAcquired:
		p.claim = cl
		p.m.UID = cl.UID
		if !cl.Fresh {
			// Taken over from a failed attempt or a dead owner: that
			// attempt may have reached the broker. Same uid, flagged.
			p.m.DuplicateRisk = true
			s.metrics.addIdemTakeover()
		}
		r.acquired = append(r.acquired, p)
		r.toSend = append(r.toSend, p)
	case ClaimDone:
		s.metrics.addIdemHit()
		s.metrics.addProduced(r.app, "duplicate")
		r.results[p.idx], r.done[p.idx] = cl.Result, true
	case ClaimBusy:
		r.busy = append(r.busy, p)
	case ClaimMismatch:
		s.metrics.addIdemConflict("reused")
		return errorf(http.StatusConflict, CodeIdempotencyKeyReused,
			"messages[%d]: idempotency key %q was used for a different message (payload, topic, key, tags, properties, event time or delay differ)",
			p.idx, truncate(p.m.IdempotencyKey, 80))
	}
	return nil
}

// waitBusy waits for keys another request holds: it either finishes (we
// answer its result), fails (we take over) or outlasts our patience (409).
func (r *produceRun) waitBusy() error {
	if len(r.busy) == 0 {
		return nil
	}
	deadline := time.Now().Add(r.s.opts.IdempotencyWait)
	t := time.NewTicker(r.s.opts.PollInterval)
	defer t.Stop()
	for len(r.busy) > 0 {
		if time.Now().After(deadline) {
			r.s.metrics.addIdemConflict("in_progress")
			e := errorf(http.StatusConflict, CodeIdempotencyInProgress,
				"messages[%d]: a request with idempotency key %q is still in flight; retry later with the same key",
				r.busy[0].idx, truncate(r.busy[0].m.IdempotencyKey, 80))
			e.RetryAfter = time.Second
			return e
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-t.C:
		}
		still := r.busy
		r.busy = nil
		for _, p := range still {
			if err := r.claimKey(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// abort gives up the keys this request claimed (it is refused).
func (r *produceRun) abort() {
	for _, p := range r.acquired {
		if err := r.s.opts.Idempotency.Release(context.WithoutCancel(r.ctx), r.app, p.m.IdempotencyKey, p.claim.Owner, p.claim.Fresh); err != nil {
			r.s.log.Warn("idempotency release failed", "app", r.app, "key", p.m.IdempotencyKey, "err", err)
		}
	}
}

// send hands every message over in request order (the sender, or the
// scheduler for delayed messages); outcomes arrive on r.ch.
func (r *produceRun) send() {
	s := r.s
	r.ch = make(chan outcome, len(r.toSend))
	_, untraced := s.rec.(tracer.Nop)
	for _, p := range r.toSend {
		m := p.m
		if !untraced {
			s.rec.Record(tracer.Event{Type: tracer.Accepted, UID: m.UID, Topic: m.Topic, Key: m.Key, Tags: m.Tags,
				App: r.app, ClientIP: r.clientIP, Node: s.opts.Node, Time: r.accepted,
				Properties: acceptedProps(m)})
		}
		cb := r.callback(p, time.Now())
		if m.Delayed() && s.opts.Scheduler != nil {
			p.scheduled = true
			s.opts.Scheduler.ScheduleAsync(r.ctx, m, cb)
		} else {
			s.opts.Sender.SendAsync(r.ctx, m, cb)
		}
	}
}

// callback is p's answer from the sender. A stored message with a claimed
// key has its result recorded (the complete step's Redis write) right
// here, before the request hears of it: the request goroutine wakes once
// for both, and the record rides the batcher's next round trip. Neither
// blocks (the Sender contract).
func (r *produceRun) callback(p *pendingMessage, start time.Time) func(produce.Receipt, error) {
	return func(rc produce.Receipt, err error) {
		latency := time.Since(start)
		if err != nil || p.claim.State != ClaimAcquired {
			r.ch <- outcome{p: p, rc: rc, err: err, latency: latency}
			return
		}
		p.settled.Store(true)
		r.s.opts.Idempotency.CompleteAsync(r.app, p.m.IdempotencyKey, p.claim.Owner, p.fp, storedAs(p.m, rc), func(err error) {
			r.ch <- outcome{p: p, rc: rc, latency: latency, completed: true, completeErr: err}
		})
	}
}

// collect takes the outcomes until every message has one or the request
// ends; claims are renewed meanwhile. Outcomes still missing then are
// waited for by a straggler goroutine, and their messages answered as not
// durable.
func (r *produceRun) collect() {
	remaining := len(r.toSend)
	leases := r.s.newLeaseKeeper(r.app, r.acquired)
	defer leases.stop()
	for remaining > 0 {
		select {
		case o := <-r.ch:
			remaining--
			leases.drop(o.p)
			r.complete(o)
		case <-leases.tick():
			leases.renew(r.ctx)
		case <-r.ctx.Done():
			r.straggle(remaining, leases.handOver())
			return
		}
	}
}

// complete files one outcome.
func (r *produceRun) complete(o outcome) {
	res, err := r.s.finish(r.app, r.clientIP, o)
	r.results[o.p.idx], r.done[o.p.idx] = res, true
	if err != nil && r.firstErr == nil {
		r.firstErr = err
	}
}

// straggle is called when the deadline passed, or the client went away,
// with n messages still unacknowledged. Their outcome still matters: a
// late success must reach the idempotency store so a retry does not
// produce twice. The claims stay ours (renewed) until then.
func (r *produceRun) straggle(n int, leases leaseKeeper) {
	s, ch := r.s, r.ch
	s.goStraggler(func() {
		defer leases.stop()
		for n > 0 {
			select {
			case o := <-ch:
				n--
				leases.drop(o.p)
				_, _ = s.finish(r.app, r.clientIP, o)
			case <-leases.tick():
				leases.renew(context.Background())
			}
		}
	})
	e := toError(r.ctx.Err()) // PRODUCE_TIMEOUT or CLIENT_CLOSED_REQUEST
	for i := range r.results {
		if !r.done[i] {
			r.results[i] = Result{UID: r.msgs[i].UID, Status: produce.StatusFailed, DuplicateRisk: r.msgs[i].DuplicateRisk,
				Error: &ErrorBody{Code: e.Code, Message: e.Message}}
		}
	}
	if r.firstErr == nil {
		r.firstErr = e
	}
}

// answer is the request's results and its error, if any message is not
// durable.
func (r *produceRun) answer() ([]Result, error) {
	if r.firstErr != nil {
		return r.results, r.firstErr
	}
	return r.results, nil
}

func acceptedProps(m *produce.Message) map[string]string {
	if m.IdempotencyKey == "" && !m.DuplicateRisk {
		return nil
	}
	p := map[string]string{}
	if m.IdempotencyKey != "" {
		p["idempotencyKey"] = m.IdempotencyKey
	}
	if m.DuplicateRisk {
		p["duplicateRisk"] = "true"
	}
	return p
}

// finish records one message's outcome (idempotency store, trace,
// metrics) and returns its Result, with an *Error when it is not durable.
func (s *Server) finish(app, clientIP string, o outcome) (Result, error) {
	m := o.p.m
	if o.err != nil {
		e := sendError(o.err)
		s.metrics.addProduced(app, string(produce.StatusFailed))
		s.log.Warn("produce failed", "uid", m.UID, "topic", m.Topic, "app", app, "code", e.Code, "err", o.err)
		if o.p.claim.State == ClaimAcquired {
			// Kept as failed: the message may be stored (a timeout), and
			// the retry, taking over, is flagged duplicateRisk. Only a
			// first attempt the broker refused for good (nothing stored)
			// is forgotten, so its retry is not flagged.
			forget := o.p.claim.Fresh && refusedForGood(e.Code)
			if err := s.opts.Idempotency.Release(context.Background(), app, m.IdempotencyKey, o.p.claim.Owner, forget); err != nil {
				s.log.Warn("idempotency release failed", "app", app, "key", m.IdempotencyKey, "err", err)
			}
		}
		return Result{UID: m.UID, Status: produce.StatusFailed, DuplicateRisk: m.DuplicateRisk,
			Error: &ErrorBody{Code: e.Code, Message: e.Message}}, e
	}
	r := resultOf(m, o.rc)
	if o.p.claim.State == ClaimAcquired {
		err := o.completeErr
		if !o.completed {
			err = s.opts.Idempotency.Complete(context.Background(), app, m.IdempotencyKey, o.p.claim.Owner, o.p.fp, storedAs(m, o.rc))
		}
		if err != nil {
			s.metrics.addIdemRecordError()
			s.log.Error("idempotency result not stored: a retry with this key may produce a duplicate",
				"uid", m.UID, "app", app, "key", m.IdempotencyKey, "err", err)
		}
	}
	s.metrics.addProduced(app, string(r.Status))
	s.metrics.observeAck(o.latency.Seconds())
	ev := tracer.Event{Type: tracer.Persisted, UID: m.UID, MessageID: r.MessageID, Topic: m.Topic, Key: m.Key, Tags: m.Tags,
		App: app, ClientIP: clientIP, Node: s.opts.Node, Cluster: r.Cluster, Time: s.now(), Latency: o.latency}
	if r.Status != produce.StatusFailover && r.Status != produce.StatusSpooled {
		// A failed-over or spooled message's events (failed_over, spooled,
		// later replayed) come from the durable sender.
		s.rec.Record(ev)
	}
	if r.Status == produce.StatusScheduled && !o.p.scheduled {
		ev.Type = tracer.Scheduled
		ev.Properties = map[string]string{"deliverAt": r.DeliverAt}
		s.rec.Record(ev)
	}
	return r, nil
}

// resultOf is the answer for a message the sender made durable.
func resultOf(m *produce.Message, rc produce.Receipt) Result {
	r := Result{UID: m.UID, MessageID: rc.MessageID, Status: rc.Status, Cluster: rc.Cluster, DuplicateRisk: m.DuplicateRisk}
	if !rc.DeliverAt.IsZero() {
		r.DeliverAt = rc.DeliverAt.UTC().Format(time.RFC3339Nano)
	}
	return r
}

// storedAs is what the idempotency store keeps of a durable message's
// answer (Complete keeps uid, messageId, status, cluster and deliverAt).
func storedAs(m *produce.Message, rc produce.Receipt) Result {
	return resultOf(m, rc)
}

// refusedForGood reports whether a send failed with an answer that says
// nothing was stored.
func refusedForGood(code string) bool {
	return code == CodeTopicNotFound || code == CodeProduceRejected || code == CodePayloadTooLarge
}

// sendError maps a sender failure to its answer.
func sendError(err error) *Error {
	var pe *pulsar.Error
	var own *Error
	if errors.As(err, &own) {
		return own // a sender or scheduler that knows its answer
	}
	if e := componentErrors.Map(err); e != nil {
		return e // the durable sender's or the delay engine's
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &pe) && pe.Result() == pulsar.TimeoutError:
		return toError(context.DeadlineExceeded)
	case errors.Is(err, produce.ErrPoolClosed):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
			Message: "the sidecar is shutting down; nothing was stored: retry with the same idempotency key", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeProduceFailed,
			Message: "the request was cancelled before the broker acknowledged; the message may or may not be stored: retry with the same idempotency key", Err: err}
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeProduceFailed,
		Message: "the broker did not store the message: retry with the same idempotency key", Err: err}
}
