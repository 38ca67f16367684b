package consume

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// --- what replicas hold ---

// heldByTag counts this replica's records of the subscription per tag.
func (e *engine) heldByTag() map[string]HeldCounts {
	out := map[string]HeldCounts{}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.records {
		var h HeldCounts
		switch r.state {
		case stReady, stLeasing:
			h.Ready = 1
		case stInflight:
			h.InFlight = 1
		case stHeld, stDeadLettering:
			h.Other = 1
		default:
			continue
		}
		if len(r.tags) == 0 {
			c := out[TagNone]
			c.add(h)
			out[TagNone] = c
		}
		for _, t := range r.tags {
			c := out[t]
			c.add(h)
			out[t] = c
		}
	}
	return out
}

// heldSnapshot is one replica's report in {prefix}cheld:<path>.
type heldSnapshot struct {
	At    int64                 `json:"at"` // Unix ms
	Total HeldCounts            `json:"total"`
	Tags  map[string]HeldCounts `json:"tags"`
}

func (s *Service) heldKey(path string) string { return s.opts.State.KeyPrefix + "cheld:" + path }

// maxHeldTags bounds the tags in one replica's report; the rest are summed
// under TagOther.
const maxHeldTags = 1000

// reportHeld writes what this replica holds of e's subscription to Redis
// and Prometheus.
func (s *Service) reportHeld(ctx context.Context, e *engine) {
	tags := e.heldByTag()
	snap := heldSnapshot{At: time.Now().UnixMilli(), Tags: capTags(tags, maxHeldTags)}
	e.mu.Lock()
	snap.Total = HeldCounts{}
	for _, r := range e.records {
		switch r.state {
		case stReady, stLeasing:
			snap.Total.Ready++
		case stInflight:
			snap.Total.InFlight++
		case stHeld, stDeadLettering:
			snap.Total.Other++
		}
	}
	e.mu.Unlock()
	s.metrics.setHeld(e.path, tags)
	b, err := json.Marshal(snap)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.State.RedisTimeout)
	defer cancel()
	key := s.heldKey(e.path)
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, key, bindingHex(s.node), b)
	pipe.PExpire(ctx, key, s.heldFresh()+time.Minute)
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Debug("reporting held messages failed", "subscription", e.path, "err", err)
	}
}

// forgetHeld removes this replica's report (its engine closed).
func (s *Service) forgetHeld(path string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.State.RedisTimeout)
	defer cancel()
	_ = s.rdb.HDel(ctx, s.heldKey(path), bindingHex(s.node)).Err()
	s.metrics.setHeld(path, nil)
}

// heldFresh is how old a replica's report may be and still count.
func (s *Service) heldFresh() time.Duration { return 3*s.opts.Stats.Interval + 5*time.Second }

// readHeld sums the fresh reports of every replica.
func (s *Service) readHeld(ctx context.Context, path string) (HeldCounts, map[string]HeldCounts, int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.State.RedisTimeout)
	defer cancel()
	m, err := s.rdb.HGetAll(ctx, s.heldKey(path)).Result()
	if err != nil {
		return HeldCounts{}, nil, 0, err
	}
	var total HeldCounts
	tags := map[string]HeldCounts{}
	n := 0
	oldest := time.Now().Add(-s.heldFresh()).UnixMilli()
	for _, v := range m {
		var snap heldSnapshot
		if json.Unmarshal([]byte(v), &snap) != nil || snap.At < oldest {
			continue
		}
		n++
		total.add(snap.Total)
		for t, c := range snap.Tags {
			x := tags[t]
			x.add(c)
			tags[t] = x
		}
	}
	return total, tags, n, nil
}

// capTags keeps the max tags holding the most and sums the rest under
// TagOther.
func capTags(tags map[string]HeldCounts, maxTags int) map[string]HeldCounts {
	if len(tags) <= maxTags {
		return tags
	}
	names := make([]string, 0, len(tags))
	for t := range tags {
		names = append(names, t)
	}
	size := func(h HeldCounts) int64 { return h.Ready + h.InFlight + h.Other }
	slices.SortFunc(names, func(a, b string) int {
		if d := size(tags[b]) - size(tags[a]); d != 0 {
			return int(min(max(d, -1), 1))
		}
		return strings.Compare(a, b)
	})
	out := make(map[string]HeldCounts, maxTags+1)
	var other HeldCounts
	for i, t := range names {
		if i < maxTags && t != TagOther {
			out[t] = tags[t]
		} else {
			other.add(tags[t])
		}
	}
	out[TagOther] = other
	return out
}
