package consume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A cursor reset (the console's "replay from a time", issue 15) is an
// explicit replay: every message published at or after the time is
// delivered again to the subscription's HTTP consumers, even those the
// delivery state remembers as acknowledged or dead-lettered. So a reset
// (Service.ResetCursor):
//
//  1. writes a reset mark ({prefix}creset:<path>, the reset's time in Unix
//     ms, kept two dedup windows): ackIds handed out before it are stale,
//     and an ack or nack with one is ignored (it would otherwise mark the
//     replayed copy acknowledged);
//  2. closes this replica's engine of the subscription and tells the other
//     replicas that reported holding messages of it to close theirs: what
//     they held (ready, leased, held back) is dropped, their in-flight
//     deliveries end with the reset, and the next receive starts a new
//     engine that reads from the new position;
//  3. moves the cursor on the broker (the caller's move function, the
//     Pulsar admin API: the broker disconnects the subscription's
//     consumers);
//  4. removes the subscription's delivery state (every bucket: leases,
//     acks, dead-letter marks, delivery counts, the dedup window), so the
//     replayed messages are delivered as new, with delivery 1;
//  5. drops the cached per-tag backlog.
//
// What is not undone: messages already in the dead-letter topic stay
// there (the replayed original is delivered again; it may be
// dead-lettered again); the disaster-recovery cluster's cursor is not
// moved (move decides which clusters it resets); and during the reset a
// receive may still hand out a message from before it (it is then
// delivered once more after it).

// resetKey is the reset mark of a subscription.
func (s *Service) resetKey(path string) string { return s.opts.State.KeyPrefix + "creset:" + path }

// clearStateScript removes every bucket of a subscription's delivery
// state: from two before the current one to far enough ahead to cover the
// longest write ahead (ARGV[2] buckets). Returns how many fields it removed.
var clearStateScript = redis.NewScript(statePrelude + `
local ahead = tonumber(ARGV[2])
local removed = 0
for b = cb - 2, cb + ahead do
  local k = root .. b
  removed = removed + redis.call('HLEN', k)
  redis.call('DEL', k)
end
return {removed}
`)

// clearAhead is how many buckets ahead of the current one a reset clears:
// writes ahead reach a nack delay or a dead-letter hold past the window,
// and a bucket is at least the dedup window (minutes) wide.
const clearAhead = 64

// ResetResult is what ResetCursor did.
type ResetResult struct {
	// ClearedStates is how many delivery-state entries (leases, acks,
	// dead-letter marks) were removed.
	ClearedStates int64
	// NotifiedReplicas is how many other replicas were told to drop what
	// they held.
	NotifiedReplicas int
}

// ResetCursor replays the subscription ref from at (see the comment above
// for what it changes): move moves the cursor on the broker. It answers
// SUBSCRIPTION_NOT_FOUND for an unregistered subscription, and nothing is
// changed then; an error of move is returned as it is, after steps 1 and
// 2 (harmless: a reset that did not happen only cut in-flight deliveries
// short and made their ackIds stale).
func (s *Service) ResetCursor(ctx context.Context, ref SubscriptionRef, at time.Time, move func(context.Context) error) (ResetResult, error) {
	var res ResetResult
	if err := ref.Validate(); err != nil {
		return res, err
	}
	cfg, err := s.config(ctx, ref)
	if err != nil {
		return res, err
	}
	path := ref.Path()
	rctx, cancel := context.WithTimeout(ctx, s.opts.State.RedisTimeout)
	now := time.Now()
	err = s.rdb.Set(rctx, s.resetKey(path), strconv.FormatInt(now.UnixMilli(), 10), 2*s.opts.State.DedupWindow+time.Minute).Err()
	var holders []string
	if err == nil {
		holders, err = s.rdb.HKeys(rctx, s.heldKey(path)).Result()
	}
	cancel()
	if err != nil {
		s.metrics.addStoreError()
		return res, storeError(err)
	}
	s.dropEngine(path)
	byNode := map[uint64][]string{}
	for _, h := range holders {
		node, err := strconv.ParseUint(h, 16, 64)
		if err != nil || node == s.node {
			continue
		}
		byNode[node] = nil
	}
	res.NotifiedReplicas = len(byNode)
	s.tellPeers(ctx, peerReset, path, byNode, 0)

	if err := move(ctx); err != nil {
		return res, err
	}

	sp := s.states.space(ref.binding(), cfg.ackTimeout)
	got, err := s.states.eval(ctx, clearStateScript, sp, 1, []any{s.states.widthArg(), clearAhead}, 1)
	if err != nil {
		s.metrics.addStoreError()
		return res, storeError(fmt.Errorf("consume: reset %s: clear the delivery state: %w", path, err))
	}
	res.ClearedStates = got[0]
	s.backlog.mu.Lock()
	delete(s.backlog.entries, path)
	s.backlog.mu.Unlock()
	s.log.Info("subscription cursor reset", "subscription", path, "to", at.UTC(), "clearedStates", res.ClearedStates,
		"notifiedReplicas", res.NotifiedReplicas)
	return res, nil
}

// peerReset tells a replica to drop its engine of a subscription (a
// cursor reset).
const peerReset = "reset"

// dropEngine closes this replica's engine of path, if it runs: its
// records are forgotten and its consumers closed. The next receive starts
// a new one.
func (s *Service) dropEngine(path string) {
	s.mu.Lock()
	e := s.engines[path]
	if e != nil {
		delete(s.engines, path)
		s.metrics.setEngines(len(s.engines))
	}
	s.mu.Unlock()
	if e != nil {
		e.close()
	}
}

// staleAckIDs reports, per ackId, whether it was handed out before the
// subscription's last cursor reset (an ackId's Expires is its hand-out time
// plus the dedup window). One GET per ack or nack request.
func (s *Service) staleAckIDs(ctx context.Context, ref SubscriptionRef, ids []AckID) ([]bool, error) {
	rctx, cancel := context.WithTimeout(ctx, s.opts.State.RedisTimeout)
	defer cancel()
	v, err := s.rdb.Get(rctx, s.resetKey(ref.Path())).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, nil // not ours: ignore it
	}
	at := time.UnixMilli(ms)
	out := make([]bool, len(ids))
	for i := range ids {
		out[i] = ids[i].Expires.Add(-s.opts.State.DedupWindow).Before(at)
	}
	return out, nil
}

// withoutStale drops the ackIds handed out before the subscription's last
// cursor reset (and their tokens); it answers how many it dropped.
func (s *Service) withoutStale(ctx context.Context, ref SubscriptionRef, ids []AckID, toks []string) ([]AckID, []string, int, error) {
	stale, err := s.staleAckIDs(ctx, ref, ids)
	if err != nil {
		s.metrics.addStoreError()
		return nil, nil, 0, storeError(err)
	}
	if stale == nil {
		return ids, toks, 0, nil
	}
	keptIDs, keptToks := make([]AckID, 0, len(ids)), make([]string, 0, len(ids))
	for i := range ids {
		if !stale[i] {
			keptIDs, keptToks = append(keptIDs, ids[i]), append(keptToks, toks[i])
		}
	}
	return keptIDs, keptToks, len(ids) - len(keptIDs), nil
}
