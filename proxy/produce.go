package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
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

// handleProduce serves POST /v1/topics/{tenant}/{namespace}/{topic}/messages:
// authorise, read, decode and validate everything, rate-limit, then produce.
// Any error before produce writes nothing.
func (s *Server) handleProduce(c *gin.Context) {
	p := c.MustGet(principalKey).(*principal)
	tenant, ns, local := c.Param("tenant"), c.Param("namespace"), c.Param("topic")
	topic, err := TopicName(tenant, ns, local)
	if err != nil {
		s.fail(c, err, nil)
		return
	}
	if !p.mayProduce(tenant, ns, local) {
		s.fail(c, errorf(http.StatusForbidden, CodeForbidden, "app %q may not produce to %s/%s/%s", p.name, tenant, ns, local), nil)
		return
	}
	if IsInternalTopic(tenant, ns, local) {
		s.fail(c, internalTopic(tenant, ns, local), nil)
		return
	}
	accepted := s.now()
	lim := &s.opts.Limits
	var msgs []*produce.Message
	if IsBatchRequest(c.Request) {
		if c.GetHeader(HeaderIdempotencyKey) != "" {
			// Ignoring it would leave the caller believing its retries are safe.
			s.fail(c, badRequest(CodeInvalidIdempotencyKey, "the %s header belongs to the raw form; in the JSON batch form give each message its idempotencyKey",
				HeaderIdempotencyKey), nil)
			return
		}
		body, err := readBody(c, lim.MaxRequestBytes, CodeRequestTooLarge, "the request body")
		if err != nil {
			s.fail(c, err, nil)
			return
		}
		if msgs, err = DecodeBatch(body, topic, lim, accepted); err != nil {
			s.fail(c, err, nil)
			return
		}
	} else {
		body, err := readBody(c, lim.MaxPayloadBytes, CodePayloadTooLarge, "the payload")
		if err != nil {
			s.fail(c, err, nil)
			return
		}
		m, err := DecodeRaw(c.Request.Header, body, topic, lim, accepted)
		if err != nil {
			s.fail(c, err, nil)
			return
		}
		msgs = []*produce.Message{m}
	}
	for i, m := range msgs {
		if m.DelayLevel == "" {
			continue
		}
		if s.opts.Scheduler == nil {
			s.fail(c, errorf(http.StatusNotImplemented, CodeDelayLevelUnavailable,
				"messages[%d]: delay levels are not available on this sidecar yet; use deliverAfter or deliverAt", i), nil)
			return
		}
		if !s.opts.Scheduler.HasLevel(m.DelayLevel) {
			s.fail(c, badRequest(CodeInvalidDelay, "messages[%d].delayLevel: %q is not a configured level", i, truncate(m.DelayLevel, 40)), nil)
			return
		}
	}
	if p.limiter != nil {
		if wait, ok := p.limiter.take(len(msgs)); !ok {
			s.metrics.addRateLimited(p.name)
			s.fail(c, rateLimited(p.name, wait), nil)
			return
		}
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
}

type outcome struct {
	p   *pendingMessage
	rc  produce.Receipt
	err error
	at  time.Time
}

// produce runs the produce path for validated messages: idempotency
// claims, then the sender (or the scheduler for delay levels), then the
// outcome of each message. It returns one Result per message. The error is
// non-nil when any message is not durable; results then say which are.
func (s *Server) produce(ctx context.Context, app, clientIP string, msgs []*produce.Message, accepted time.Time) ([]Result, error) {
	results := make([]Result, len(msgs))
	done := make([]bool, len(msgs))
	pending := make([]pendingMessage, len(msgs))
	send := make([]*pendingMessage, 0, len(msgs))
	var busy []*pendingMessage
	var acquired []*pendingMessage

	abort := func() {
		for _, p := range acquired {
			if err := s.opts.Idempotency.Release(context.WithoutCancel(ctx), app, p.m.IdempotencyKey, p.claim.Owner, p.claim.Fresh); err != nil {
				s.log.Warn("idempotency release failed", "app", app, "key", p.m.IdempotencyKey, "err", err)
			}
		}
	}
	// claim asks the store about p and files it; false means the request
	// must be refused (key reused).
	claim := func(p *pendingMessage) (bool, error) {
		cl, err := s.opts.Idempotency.Begin(ctx, app, p.m.IdempotencyKey, p.fp, p.m.UID)
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			s.metrics.addIdemUnavailable()
			s.log.Warn("idempotency store unreachable: producing with duplicateRisk", "app", app, "key", p.m.IdempotencyKey, "err", err)
			p.m.DuplicateRisk = true
			send = append(send, p)
			return true, nil
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
			acquired = append(acquired, p)
			send = append(send, p)
		case ClaimDone:
			s.metrics.addIdemHit()
			s.metrics.addProduced(app, "duplicate")
			results[p.idx], done[p.idx] = cl.Result, true
		case ClaimBusy:
			busy = append(busy, p)
		case ClaimMismatch:
			s.metrics.addIdemConflict("reused")
			return false, errorf(http.StatusConflict, CodeIdempotencyKeyReused,
				"messages[%d]: idempotency key %q was used for a different message (payload, topic, key, tags, properties, event time or delay differ)",
				p.idx, truncate(p.m.IdempotencyKey, 80))
		}
		return true, nil
	}

	for i, m := range msgs {
		m.App, m.AcceptedAt, m.UID = app, accepted, produce.NewUID()
		p := &pending[i]
		p.idx, p.m = i, m
		if m.IdempotencyKey == "" {
			send = append(send, p)
			continue
		}
		p.fp = m.Fingerprint()
		m.UID = produce.KeyedUID(app, m.IdempotencyKey, p.fp)
		if s.opts.Idempotency == nil {
			m.DuplicateRisk = true
			send = append(send, p)
			continue
		}
		if ok, err := claim(p); !ok {
			abort()
			return nil, err
		}
	}

	// Wait for keys another request holds: it either finishes (we answer
	// its result), fails (we take over) or outlasts our patience (409).
	if len(busy) > 0 {
		deadline := time.Now().Add(s.opts.IdempotencyWait)
		t := time.NewTicker(s.opts.PollInterval)
		for len(busy) > 0 {
			if time.Now().After(deadline) {
				t.Stop()
				abort()
				s.metrics.addIdemConflict("in_progress")
				e := errorf(http.StatusConflict, CodeIdempotencyInProgress,
					"messages[%d]: a request with idempotency key %q is still in flight; retry later with the same key",
					busy[0].idx, truncate(busy[0].m.IdempotencyKey, 80))
				e.RetryAfter = time.Second
				return nil, e
			}
			select {
			case <-ctx.Done():
				t.Stop()
				abort()
				return nil, ctx.Err()
			case <-t.C:
			}
			still := busy
			busy = nil
			for _, p := range still {
				if ok, err := claim(p); !ok {
					t.Stop()
					abort()
					return nil, err
				}
			}
		}
		t.Stop()
	}

	// Hand everything over in request order, then collect the outcomes.
	ch := make(chan outcome, len(send))
	for _, p := range send {
		m := p.m
		s.rec.Record(tracer.Event{Type: tracer.Accepted, UID: m.UID, Topic: m.Topic, Key: m.Key, Tags: m.Tags,
			App: app, ClientIP: clientIP, Node: s.opts.Node, Time: accepted,
			Properties: acceptedProps(m)})
		start := time.Now()
		cb := func(rc produce.Receipt, err error) { ch <- outcome{p: p, rc: rc, err: err, at: start} }
		if m.Delayed() && s.opts.Scheduler != nil {
			p.scheduled = true
			s.opts.Scheduler.ScheduleAsync(ctx, m, cb)
		} else {
			s.opts.Sender.SendAsync(ctx, m, cb)
		}
	}
	var firstErr error
	remaining := len(send)
	leases := s.newLeaseKeeper(app, acquired)
	defer leases.stop()
collect:
	for remaining > 0 {
		select {
		case o := <-ch:
			remaining--
			leases.drop(o.p)
			r, err := s.finish(app, clientIP, o)
			results[o.p.idx], done[o.p.idx] = r, true
			if err != nil && firstErr == nil {
				firstErr = err
			}
		case <-leases.tick():
			leases.renew(ctx)
		case <-ctx.Done():
			break collect
		}
	}
	if remaining > 0 {
		// The deadline passed, or the client went away, with messages
		// still unacknowledged. Their outcome still matters: a late
		// success must reach the idempotency store so a retry does not
		// produce twice. The claims stay ours (renewed) until then.
		n := remaining
		straggling := leases.handOver()
		s.goStraggler(func() {
			defer straggling.stop()
			for n > 0 {
				select {
				case o := <-ch:
					n--
					straggling.drop(o.p)
					_, _ = s.finish(app, clientIP, o)
				case <-straggling.tick():
					straggling.renew(context.Background())
				}
			}
		})
		e := toError(ctx.Err()) // PRODUCE_TIMEOUT or CLIENT_CLOSED_REQUEST
		for i := range results {
			if !done[i] {
				results[i] = Result{UID: msgs[i].UID, Status: produce.StatusFailed, DuplicateRisk: msgs[i].DuplicateRisk,
					Error: &ErrorBody{Code: e.Code, Message: e.Message}}
			}
		}
		if firstErr == nil {
			firstErr = e
		}
	}
	if firstErr != nil {
		return results, firstErr
	}
	return results, nil
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
	latency := time.Since(o.at)
	bg := context.Background()
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
			if err := s.opts.Idempotency.Release(bg, app, m.IdempotencyKey, o.p.claim.Owner, forget); err != nil {
				s.log.Warn("idempotency release failed", "app", app, "key", m.IdempotencyKey, "err", err)
			}
		}
		return Result{UID: m.UID, Status: produce.StatusFailed, DuplicateRisk: m.DuplicateRisk,
			Error: &ErrorBody{Code: e.Code, Message: e.Message}}, e
	}
	r := Result{UID: m.UID, MessageID: o.rc.MessageID, Status: o.rc.Status, Cluster: o.rc.Cluster, DuplicateRisk: m.DuplicateRisk}
	if !o.rc.DeliverAt.IsZero() {
		r.DeliverAt = o.rc.DeliverAt.UTC().Format(time.RFC3339Nano)
	}
	if o.p.claim.State == ClaimAcquired {
		if err := s.opts.Idempotency.Complete(bg, app, m.IdempotencyKey, o.p.claim.Owner, o.p.fp, r); err != nil {
			s.metrics.addIdemRecordError()
			s.log.Error("idempotency result not stored: a retry with this key may produce a duplicate",
				"uid", m.UID, "app", app, "key", m.IdempotencyKey, "err", err)
		}
	}
	s.metrics.addProduced(app, string(r.Status))
	s.metrics.observeAck(latency.Seconds())
	ev := tracer.Event{Type: tracer.Persisted, UID: m.UID, MessageID: r.MessageID, Topic: m.Topic, Key: m.Key, Tags: m.Tags,
		App: app, ClientIP: clientIP, Node: s.opts.Node, Cluster: r.Cluster, Time: s.now(), Latency: latency}
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
