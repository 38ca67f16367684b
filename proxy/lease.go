package proxy

import (
	"context"
	"sync"
	"time"
)

// leaseKeeper renews the idempotency claims of one request's messages
// while they wait for the broker, so a live owner keeps its keys however
// long the broker takes and a dead one loses them within one lease (ADR
// 030). Renewals run every third of the lease; a request answered within
// that (the normal case) renews nothing. Used by one goroutine at a time
// (the request's, then the straggler's it is handed over to).
//
// It allocates nothing per request: the held claims are the request's own
// slice, marked through pendingMessage.leaseHeld, and the timer comes from
// a pool (a map and a ticker per keyed request showed in issue 12's
// profile).
type leaseKeeper struct {
	s     *Server
	app   string
	held  []*pendingMessage // the claims; those with leaseHeld still count
	n     int               // how many of held are still held
	every time.Duration
	t     *time.Timer // nil when nothing is held
}

var leaseTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

func (s *Server) newLeaseKeeper(app string, acquired []*pendingMessage) leaseKeeper {
	k := leaseKeeper{s: s, app: app}
	if len(acquired) == 0 || s.opts.Idempotency == nil {
		return k
	}
	for _, p := range acquired {
		p.leaseHeld = true
	}
	k.held, k.n = acquired, len(acquired)
	k.every = max(s.opts.Idempotency.Lease()/3, time.Millisecond)
	k.t = leaseTimers.Get().(*time.Timer)
	k.t.Reset(k.every)
	return k
}

// tick fires when the held claims are due for renewal; never when none are.
func (k *leaseKeeper) tick() <-chan time.Time {
	if k.t == nil {
		return nil
	}
	return k.t.C
}

// drop stops renewing p's claim (its outcome is known); p need not be held.
func (k *leaseKeeper) drop(p *pendingMessage) {
	if !p.leaseHeld {
		return
	}
	p.leaseHeld = false
	k.n--
	if k.n == 0 {
		k.stop()
	}
}

// renew extends every held claim, concurrently (the store batches them),
// and sets the next tick. A claim that is no longer ours (taken over after
// a Redis pause longer than the lease) is logged and dropped: the other
// owner produces the same uid, flagged duplicateRisk.
func (k *leaseKeeper) renew(ctx context.Context) {
	var mu sync.Mutex
	var lost []*pendingMessage
	var wg sync.WaitGroup
	for _, p := range k.held {
		if !p.leaseHeld || p.settled.Load() {
			continue // dropped, or its answer is in and its record on the way: nothing to renew
		}
		wg.Go(func() {
			ok, err := k.s.opts.Idempotency.Renew(ctx, k.app, p.m.IdempotencyKey, p.claim.Owner)
			switch {
			case err != nil:
				k.s.log.Warn("idempotency lease not renewed", "app", k.app, "key", p.m.IdempotencyKey, "err", err)
			case !ok:
				k.s.log.Warn("idempotency lease lost to another attempt: both copies carry the key's uid",
					"uid", p.m.UID, "app", k.app, "key", p.m.IdempotencyKey)
				mu.Lock()
				lost = append(lost, p)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, p := range lost {
		k.drop(p)
	}
	if k.t != nil {
		k.t.Reset(k.every)
	}
}

// handOver moves the held claims to a new keeper (for the goroutine that
// waits for stragglers) and leaves this one empty.
func (k *leaseKeeper) handOver() leaseKeeper {
	nk := *k
	k.held, k.n, k.t = nil, 0, nil
	return nk
}

// stop ends the renewals and returns the timer to the pool (Go 1.23
// timers: after Stop no stale tick is received from a reused timer).
func (k *leaseKeeper) stop() {
	if k.t != nil {
		k.t.Stop()
		leaseTimers.Put(k.t)
		k.t = nil
	}
}
