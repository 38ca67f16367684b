package consume

import (
	"context"
	"strings"
	"time"
)

// backlogLoop scans every registered subscription's per-tag backlog each
// Options.TagBacklog.Interval for Prometheus. One replica scans a
// subscription per interval (a Redis lock) and exports the result; the
// others drop their gauges of it, so each subscription's series come from
// one replica.
func (s *Service) backlogLoop() {
	tick := time.NewTicker(s.opts.TagBacklog.Interval)
	defer tick.Stop()
	exported := map[string]bool{}
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.State.RedisTimeout)
		paths, err := s.rdb.SMembers(ctx, s.registry.allKey()).Result()
		cancel()
		if err != nil {
			s.log.Debug("backlog scan: listing subscriptions", "err", err)
			continue
		}
		live := map[string]bool{}
		for _, path := range paths {
			ref, ok := parseSubscriptionPath(path)
			if !ok {
				continue
			}
			live[path] = true
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.State.RedisTimeout)
			mine, err := s.rdb.SetNX(ctx, s.opts.State.KeyPrefix+"ctagscan:"+path, bindingHex(s.node), s.opts.TagBacklog.Interval*9/10).Result()
			cancel()
			if err != nil || !mine {
				if exported[path] {
					s.metrics.setBacklog(path, nil)
					delete(exported, path)
				}
				continue
			}
			select {
			case <-s.quit:
				return
			default:
			}
			res, err := s.TagBacklog(context.Background(), ref)
			if err != nil {
				s.log.Debug("backlog scan", "subscription", path, "err", err)
				continue
			}
			s.metrics.setBacklog(path, res)
			exported[path] = true
		}
		for path := range exported {
			if !live[path] {
				s.metrics.setBacklog(path, nil)
				delete(exported, path)
			}
		}
	}
}

// parseSubscriptionPath reads "tenant/namespace/topic/subscription".
func parseSubscriptionPath(p string) (SubscriptionRef, bool) {
	parts := strings.Split(p, "/")
	if len(parts) != 4 {
		return SubscriptionRef{}, false
	}
	ref := SubscriptionRef{Tenant: parts[0], Namespace: parts[1], Topic: parts[2], Subscription: parts[3]}
	return ref, ref.Validate() == nil
}
