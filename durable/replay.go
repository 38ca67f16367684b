package durable

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// replayLoop empties the spool into healthy clusters until ctx ends. It
// works in passes: a pass reads the spool from its oldest unacknowledged
// record, in append order, and hands records to a cluster in that order,
// up to ReplayWindow in flight. A record is acknowledged in the spool only
// after a broker acknowledged it. A retriable failure ends the pass; the
// next one, after a backoff, starts again from the oldest record still
// unacknowledged, so nothing is skipped.
func (s *Sender) replayLoop(ctx context.Context) {
	defer close(s.replayDone)
	failures := 0
	for ctx.Err() == nil {
		err := s.replayPass(ctx)
		switch {
		case ctx.Err() != nil, errors.Is(err, spool.ErrClosed):
			return
		case err != nil:
			failures++
			s.log.Debug("replay pass ended", "err", err, "failures", failures)
			t := time.NewTimer(s.backoff(failures))
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		default:
			failures = 0
		}
	}
}

// errRetryRejected ends a pass so that records refused earlier are offered
// again.
var errRetryRejected = errors.New("durable: offering refused records again")

func (s *Sender) replayPass(ctx context.Context) error {
	pctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	r := s.spool.NewReader()
	defer func() { _ = r.Close() }()
	sem := make(chan struct{}, s.opts.ReplayWindow)
	var inflight sync.WaitGroup
	defer inflight.Wait() // runs first: no outcome is left behind the pass
	var rejected atomic.Int64
	start, startGen := time.Now(), s.transitions.Load()
	for {
		if pctx.Err() != nil {
			return context.Cause(pctx)
		}
		if rejected.Load() > 0 && time.Since(start) >= s.opts.RejectedRetry {
			return nil
		}
		nctx, ncancel := pctx, context.CancelFunc(func() {})
		if rejected.Load() > 0 {
			// Offer refused records again after RejectedRetry, or as soon
			// as a breaker changes state (the primary may be back and take
			// what the DR cluster refused).
			changed := s.changed()
			if s.transitions.Load() != startGen {
				return nil
			}
			nctx, ncancel = s.untilRetryOrChange(pctx, start.Add(s.opts.RejectedRetry), changed)
		}
		pos, rec, err := r.Next(nctx)
		retryRejected := errors.Is(context.Cause(nctx), errRetryRejected)
		ncancel()
		switch {
		case errors.Is(err, spool.ErrCorrupt):
			// The bytes changed on disk since Open verified them. Leave the
			// record unacknowledged (its segment is kept) and say so.
			s.met.replayUnreadable()
			s.log.Error("spooled record unreadable: left in the spool", "pos", pos.String(), "err", err)
			continue
		case err != nil && retryRejected:
			return nil
		case err != nil:
			if cause := context.Cause(pctx); cause != nil && ctx.Err() == nil {
				return cause
			}
			return err
		}
		c, t, err := s.replayCluster(pctx)
		if err != nil {
			return context.Cause(pctx)
		}
		select {
		case sem <- struct{}{}:
		case <-pctx.Done():
			c.br.release(t, time.Now())
			return context.Cause(pctx)
		}
		m := fromRecord(rec)
		inflight.Add(1)
		s.sendOnce(context.Background(), c, m, s.opts.AttemptTimeout, func(rc produce.Receipt, err error) {
			if Retriable(err) {
				// At once: a hand-over that failed (often on this very
				// goroutine) must stop the pass before the next record
				// goes out, or that one would overtake this one.
				stop(fmt.Errorf("replay to %s: %w", c.name, err))
			}
			// Possibly on the client's goroutine: Ack may delete a segment
			// file, so the outcome is handled elsewhere.
			go func() {
				defer inflight.Done()
				defer func() { <-sem }()
				s.replayed(c, t, pos, rec, m, rc, err, &rejected, stop)
			}()
		})
		if t.trial {
			inflight.Wait() // half-open: one trial at a time
		}
	}
}

// untilRetryOrChange returns a context that ends with errRetryRejected at
// deadline or when changed is closed, whichever comes first.
func (s *Sender) untilRetryOrChange(ctx context.Context, deadline time.Time, changed <-chan struct{}) (context.Context, context.CancelFunc) {
	dctx, dcancel := context.WithDeadlineCause(ctx, deadline, errRetryRejected)
	cctx, ccancel := context.WithCancelCause(dctx)
	quit := make(chan struct{})
	go func() {
		select {
		case <-changed:
			ccancel(errRetryRejected)
		case <-quit:
		}
	}()
	return cctx, func() {
		close(quit)
		ccancel(nil)
		dcancel()
	}
}

// replayCluster waits for a cluster to replay to: a closed one (the primary
// first), else a trial slot on a half-open one.
func (s *Sender) replayCluster(ctx context.Context) (*cluster, ticket, error) {
	for {
		for _, c := range s.clusters {
			if t, ok := c.br.acquireClosed(); ok {
				return c, t, nil
			}
		}
		for _, c := range s.clusters {
			if t, ok := c.br.acquire(); ok {
				return c, t, nil
			}
		}
		// Trial slots free up without a transition: look again now and then.
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-s.changed():
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ticket{}, ctx.Err()
		}
		t.Stop()
	}
}

// replayed handles one replay outcome.
func (s *Sender) replayed(c *cluster, t ticket, pos spool.Pos, rec spool.Record, m *produce.Message,
	rc produce.Receipt, err error, rejected *atomic.Int64, stop context.CancelCauseFunc) {
	now := time.Now()
	switch {
	case err == nil:
		c.br.success(t, now)
		s.met.attempt(c.name, "ok")
		if aerr := s.spool.Ack(pos); aerr != nil {
			// Only at shutdown: the record is replayed again after the
			// restart, a duplicate with the same uid.
			s.log.Warn("replayed message not acknowledged in the spool", "uid", m.UID, "err", aerr)
		}
		s.met.replay(c.name)
		s.rec.Record(s.event(tracer.Replayed, m, func(ev *tracer.Event) {
			ev.Cluster, ev.MessageID = c.name, rc.MessageID
			if !rec.SpooledAt.IsZero() {
				ev.Latency = now.Sub(rec.SpooledAt)
			}
		}))
	case !Retriable(err):
		c.br.release(t, now)
		s.met.attempt(c.name, "rejected")
		s.met.replayRejected()
		rejected.Add(1)
		s.log.Error("spooled message refused by the cluster: it stays in the spool and is offered again later",
			"cluster", c.name, "uid", m.UID, "topic", m.Topic, "err", err, "retry_in", s.opts.RejectedRetry.String())
	default:
		c.br.failure(t, now)
		result := "retriable"
		if errors.Is(err, errAttemptTimeout) {
			result = "timeout"
		}
		s.met.attempt(c.name, result)
		stop(fmt.Errorf("replay to %s: %w", c.name, err))
	}
}
