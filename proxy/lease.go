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
// that (the normal case) renews nothing. Used by one goroutine at a time.
type leaseKeeper struct {
	s    *Server
	app  string
	held map[*pendingMessage]struct{}
	t    *time.Ticker
}

func (s *Server) newLeaseKeeper(app string, acquired []*pendingMessage) *leaseKeeper {
	k := &leaseKeeper{s: s, app: app}
	if len(acquired) == 0 || s.opts.Idempotency == nil {
		return k
	}
	k.held = make(map[*pendingMessage]struct{}, len(acquired))
	for _, p := range acquired {
		k.held[p] = struct{}{}
	}
	k.t = time.NewTicker(max(s.opts.Idempotency.Lease()/3, time.Millisecond))
	return k
}

// tick fires when the held claims are due for renewal; never when none are.
func (k *leaseKeeper) tick() <-chan time.Time {
	if k.t == nil {
		return nil
	}
	return k.t.C
}

// drop stops renewing p's claim (its outcome is known).
func (k *leaseKeeper) drop(p *pendingMessage) {
	delete(k.held, p)
	if len(k.held) == 0 {
		k.stop()
	}
}

// renew extends every held claim, concurrently (the store batches them).
// A claim that is no longer ours (taken over after a Redis pause longer
// than the lease) is logged and dropped: the other owner produces the
// same uid, flagged duplicateRisk.
func (k *leaseKeeper) renew(ctx context.Context) {
	var mu sync.Mutex
	var lost []*pendingMessage
	var wg sync.WaitGroup
	for p := range k.held {
		if p.settled.Load() {
			continue // its answer is in and its record on the way: nothing to renew
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
}

// handOver moves the held claims to a new keeper (for the goroutine that
// waits for stragglers) and leaves this one empty.
func (k *leaseKeeper) handOver() *leaseKeeper {
	nk := &leaseKeeper{s: k.s, app: k.app, held: k.held, t: k.t}
	k.held, k.t = nil, nil
	return nk
}

func (k *leaseKeeper) stop() {
	if k.t != nil {
		k.t.Stop()
		k.t = nil
	}
}
