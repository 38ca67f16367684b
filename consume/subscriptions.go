package consume

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Registrations: the subscription API the HTTP handlers call.

// PutSubscription registers or replaces a subscription. A new one also gets
// its Pulsar subscription created on every cluster (the primary at the
// spec's initial position, the disaster-recovery cluster at the earliest
// message), so nothing produced after the PUT is missed. It reports
// whether the subscription is new.
func (s *Service) PutSubscription(ctx context.Context, ref SubscriptionRef, spec SubscriptionSpec, caller Caller) (*Subscription, bool, error) {
	if s.isClosed() {
		return nil, false, closedError()
	}
	sub, err := spec.Resolve(ref, s.opts.Defaults)
	if err != nil {
		return nil, false, err
	}
	sub.UpdatedAt = s.clock.Now().UTC()
	sub.UpdatedBy = caller.App
	old, err := s.registry.Get(ctx, ref)
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.metrics.addStoreError()
		return nil, false, storeError(err)
	}
	if old == nil {
		if err := s.createPulsarSubscriptions(sub); err != nil {
			return nil, false, err
		}
	}
	created, err := s.registry.Put(ctx, sub)
	if err != nil {
		s.metrics.addStoreError()
		return nil, false, storeError(err)
	}
	s.cache.set(ref.Path(), sub, s.clock.Now())
	s.refreshEngine(sub)
	return sub, created, nil
}

// createPulsarSubscriptions subscribes and closes a consumer on each
// cluster. Only the primary must succeed: a disaster-recovery cluster that
// is down gets its subscription when the engine first consumes.
func (s *Service) createPulsarSubscriptions(sub *Subscription) error {
	for i, c := range s.opts.Clusters {
		opts := s.consumerOptions(sub, i)
		opts.ReceiverQueueSize = 1
		done := make(chan error, 1)
		go func() {
			cons, err := c.Client.Subscribe(opts)
			if err == nil {
				cons.Close()
			}
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(s.opts.Consumers.SubscribeTimeout):
			err = errors.New("timed out")
			s.goFunc(func() { // the client gives up at its operation timeout
				if err := <-done; err != nil {
					s.log.Debug("late subscribe failed", "err", err)
				}
			})
		}
		if err == nil {
			continue
		}
		if i == 0 {
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeBrokerUnavailable,
				Message: "the broker did not create the subscription; nothing was registered: retry", Err: err}
		}
		s.log.Warn("subscription not created on a secondary cluster; the engine will retry", "cluster", c.Name, "subscription", sub.Ref().Path(), "err", err)
	}
	return nil
}

// GetSubscription returns a registration (read from Redis, not the cache).
func (s *Service) GetSubscription(ctx context.Context, ref SubscriptionRef) (*Subscription, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	sub, err := s.registry.Get(ctx, ref)
	return s.found(ref, sub, err)
}

// DeleteSubscription removes a registration and stops consuming it here;
// other replicas stop within Options.State.ConfigRefresh of their next request,
// or when idle. The Pulsar subscription (its cursor and backlog) is kept,
// so registering it again resumes where it stopped; delete it with
// pulsar-admin to drop the backlog.
func (s *Service) DeleteSubscription(ctx context.Context, ref SubscriptionRef) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	err := s.registry.Delete(ctx, ref)
	switch {
	case errors.Is(err, ErrNotFound):
		return notFound(ref)
	case err != nil:
		s.metrics.addStoreError()
		return storeError(err)
	}
	s.cache.set(ref.Path(), nil, s.clock.Now())
	s.mu.Lock()
	e := s.engines[ref.Path()]
	delete(s.engines, ref.Path())
	s.mu.Unlock()
	if e != nil {
		e.close()
	}
	return nil
}

// ListSubscriptions returns a topic's registrations.
func (s *Service) ListSubscriptions(ctx context.Context, topic TopicRef) ([]*Subscription, error) {
	if err := topic.Validate(); err != nil {
		return nil, err
	}
	subs, err := s.registry.List(ctx, topic)
	if err != nil {
		s.metrics.addStoreError()
		return nil, storeError(err)
	}
	return subs, nil
}
