package consume

import (
	"context"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// Engines: the engine (engine.go) of each subscription this replica
// consumes, made or replaced by engineFor, closed by housekeeping when
// idle.

func (s *Service) consumerOptions(sub *Subscription, cluster int) pulsar.ConsumerOptions {
	typ := pulsar.Shared
	if sub.Type == TypeKeyShared {
		typ = pulsar.KeyShared
	}
	pos := pulsar.SubscriptionPositionLatest
	if sub.InitialPosition == PositionEarliest || cluster > 0 {
		pos = pulsar.SubscriptionPositionEarliest
	}
	return pulsar.ConsumerOptions{
		Topic:                          sub.Ref().TopicName(),
		SubscriptionName:               sub.Subscription,
		Type:                           typ,
		SubscriptionInitialPosition:    pos,
		Name:                           consumerName(s.opts.Node),
		ReceiverQueueSize:              s.opts.Consumers.ReceiverQueueSize,
		EnableBatchIndexAcknowledgment: true,
		NackRedeliveryDelay:            s.opts.Consumers.NackRedeliveryDelay,
		AckGroupingOptions:             &pulsar.AckGroupingOptions{MaxSize: 1000, MaxTime: 20 * time.Millisecond},
	}
}

// leaseKeep is how long past a lease's start its delivery state must stay
// visible (on Redis's clock): two leases and a minute, so the delivery
// count survives until the next delivery. Acknowledged and dead-lettered
// states stay for the dedup window; a nack adds its delay.
func (s *Service) leaseKeep(ackTimeout time.Duration) time.Duration {
	return 2*ackTimeout + time.Minute
}

func (s *Service) existingEngine(path string) *engine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.engines[path]
}

// engineFor returns the subscription's engine, creating it (and closing
// the least recently used one beyond MaxSubscriptions) or replacing it
// when the registration changed type.
func (s *Service) engineFor(cfg *Subscription) (*engine, error) {
	path := cfg.Ref().Path()
	var stale, evicted *engine
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, closedError()
	}
	e := s.engines[path]
	if e != nil {
		cur := e.cfg.Load()
		switch {
		case cur.Type != cfg.Type:
			stale, e = e, nil
			delete(s.engines, path)
		case cfg.Version > cur.Version || cfg.Version == cur.Version && cfg.TagFilter != cur.TagFilter:
			e.cfg.Store(cfg)
		}
	}
	if e == nil {
		if len(s.engines) >= s.opts.Consumers.MaxSubscriptions {
			var lru *engine
			var lruAt time.Time
			for _, c := range s.engines {
				if at := c.idleSince(); lru == nil || at.Before(lruAt) {
					lru, lruAt = c, at
				}
			}
			if lru != nil {
				delete(s.engines, lru.path)
				evicted = lru
			}
		}
		e = newEngine(s, cfg)
		s.engines[path] = e
		e.start()
		s.metrics.setEngines(len(s.engines))
	}
	s.mu.Unlock()
	if stale != nil {
		stale.close()
	}
	if evicted != nil {
		evicted.close()
	}
	return e, nil
}

// refreshEngine gives a running engine a new registration.
func (s *Service) refreshEngine(sub *Subscription) {
	s.mu.Lock()
	e := s.engines[sub.Ref().Path()]
	if e != nil && e.cfg.Load().Type != sub.Type {
		delete(s.engines, sub.Ref().Path())
	} else {
		if e != nil {
			e.cfg.Store(sub)
		}
		e = nil
	}
	s.mu.Unlock()
	if e != nil {
		e.close()
	}
}

// housekeeping flushes stats and closes idle engines.
func (s *Service) housekeeping() {
	tick := time.NewTicker(max(min(s.opts.Stats.Interval, s.opts.Consumers.IdleTimeout/4, s.opts.Consumers.ActiveWindow/2), 50*time.Millisecond))
	defer tick.Stop()
	lastFlush := time.Now()
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		now := time.Now()
		var idle, all []*engine
		s.mu.Lock()
		for path, e := range s.engines {
			if now.Sub(e.idleSince()) >= s.opts.Consumers.IdleTimeout {
				idle = append(idle, e)
				delete(s.engines, path)
			} else {
				all = append(all, e)
			}
		}
		s.metrics.setEngines(len(s.engines))
		s.mu.Unlock()
		for _, e := range idle {
			s.log.Debug("closing idle subscription", "subscription", e.path)
			e.close()
		}
		for _, e := range all {
			e.handBackIfIdle()
		}
		if time.Since(lastFlush) >= s.opts.Stats.Interval {
			lastFlush = time.Now()
			for _, e := range all {
				s.flushStats(context.Background(), e)
				s.reportHeld(context.Background(), e)
			}
		}
	}
}
