package consume

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/redis/go-redis/v9"
)

// Per-tag backlog (issue 5): how many messages of each tag a subscription
// still owes its consumers, and where they are.
//
// The backlog of tag T on subscription S is the number of messages that
// carry T, match S's tag filter, and have not been acknowledged for S:
// neither acknowledged by an HTTP consumer nor dead-lettered. They may be
// unread in Pulsar, waiting on a replica for a receive, or delivered and
// waiting for their ack; each uid counts once, so copies of a message (from
// the disaster-recovery cluster or a replay) do not count twice.
//
// How it is counted: the broker knows which entries S has not acknowledged
// but not their tags, and the sidecar knows tags and acks but only of what
// it has read. So TagBacklog reads S's unacknowledged entries on the
// primary cluster in order (Pulsar's admin "peek" at position 1, 2, ...,
// which skips acknowledged entries), decodes each message's properties only
// (batches are split), keeps those matching the filter, drops those whose
// delivery state in Redis says acknowledged or dead-lettered (the broker
// hears of an ack a little later than Redis), and counts per tag. When the
// scan reaches the end of the backlog the answer is exact; when a limit
// stops it first (messages, entries or time), the counts cover the scanned
// head only: Exact is false, Scanned says how much was read, and Estimated
// scales each count by the broker's backlog over the messages scanned.
//
// Positions shift while the scan runs: when the broker hears of an ack,
// the entries behind it move up one place, and the scan's next position
// skips an entry it never saw. So the scan reads the subscription's cursor
// (mark-delete position and individually deleted ranges) before and after
// each partition; when it moved, it reads that partition again, and when it
// moved again, the answer is not exact (StoppedBy "moving").
//
// Beside that, every replica reports what it holds per tag: ready (read,
// waiting for a receive) and in flight (delivered, lease running), summed
// over the replicas that reported within a few stats intervals. Those are a
// part of the backlog, not an addition to it.

// TagBacklog answers GET .../subscriptions/{subscription}/backlog.
type TagBacklog struct {
	Tenant       string `json:"tenant"`
	Namespace    string `json:"namespace"`
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
	TagFilter    string `json:"tagFilter"`
	// ScannedAt is when the broker's backlog was read; answers are cached
	// for Options.TagBacklog.Cache.
	ScannedAt time.Time `json:"scannedAt"`
	// Exact: the scan read the subscription's whole backlog on the primary
	// cluster, so Pending and Tags[*].Pending are the counts, not a sample.
	Exact bool `json:"exact"`
	// StoppedBy says why the scan ended: "end" (exact), "messages",
	// "entries" or "time" (the Options.TagBacklogScan* limits), "moving"
	// (acks moved the cursor during every read of a partition), "error" or
	// "unavailable" (no admin API).
	StoppedBy string      `json:"stoppedBy"`
	Scanned   ScanCounts  `json:"scanned"`
	Broker    *int64      `json:"brokerBacklog"` // the broker's msgBacklog for the subscription, when asked and answered
	Pending   int64       `json:"pending"`       // matching messages not acknowledged, in the scanned range
	Estimated *int64      `json:"estimated,omitempty"`
	Held      HeldCounts  `json:"held"` // on replicas, all tags
	Tags      []TagCounts `json:"tags"` // by pending, largest first
	// Replicas is how many replicas reported what they hold.
	Replicas int    `json:"replicas"`
	Error    string `json:"error,omitempty"` // why the broker scan failed; Held is still given
}

// ScanCounts is what a backlog scan read.
type ScanCounts struct {
	Entries  int64 `json:"entries"`  // broker entries (a batch is one)
	Messages int64 `json:"messages"` // messages in them
	// NotMatching did not match the filter: the engine acknowledges them
	// without delivering them (they are in the broker's backlog until then).
	NotMatching int64 `json:"notMatching"`
	// Acknowledged matched but are acknowledged or dead-lettered in the
	// sidecar already; the broker has not heard of it yet.
	Acknowledged int64 `json:"acknowledged"`
	// Duplicates are further copies of a uid counted already.
	Duplicates int64 `json:"duplicates"`
}

// HeldCounts is what replicas hold of a subscription.
type HeldCounts struct {
	Ready    int64 `json:"ready"`    // read from Pulsar, waiting for a receive
	InFlight int64 `json:"inFlight"` // delivered, waiting for an ack (lease running)
	Other    int64 `json:"other"`    // held off by another delivery's lease, being dead-lettered
}

func (h *HeldCounts) add(o HeldCounts) {
	h.Ready += o.Ready
	h.InFlight += o.InFlight
	h.Other += o.Other
}

// TagCounts is one tag's backlog.
type TagCounts struct {
	Tag string `json:"tag"`
	// Pending: matching messages with this tag not acknowledged, in the
	// scanned range (all of the backlog when Exact).
	Pending int64 `json:"pending"`
	// Estimated is Pending scaled to the whole broker backlog, only when
	// the scan stopped early: Pending × brokerBacklog / scanned.messages.
	Estimated *int64     `json:"estimated,omitempty"`
	Oldest    *time.Time `json:"oldestPublishTime,omitempty"` // of the pending ones scanned
	Held      HeldCounts `json:"held"`
}

// --- the scan ---

// stateScript reads delivery states without changing them. ARGV: width,
// then state ids. Returns per id 0 (none), or the state's letter as a byte.
var stateScript = redis.NewScript(statePrelude + `
local fields = {}
for i = 2, #ARGV do fields[i - 1] = ARGV[i] end
local vals = lookup(fields)
local out = {}
for i = 1, #fields do
  if vals[i] then out[i] = string.byte(vals[i], 1) else out[i] = 0 end
end
return out
`)

func init() { allScripts = append(allScripts, stateScript) }

// backlogCache keeps recent answers per subscription, and makes concurrent
// askers of one subscription share one scan.
type backlogCache struct {
	mu      sync.Mutex
	entries map[string]*backlogEntry
}

type backlogEntry struct {
	done chan struct{}
	at   time.Time
	res  *TagBacklog
	err  error
}

// TagBacklog counts a subscription's backlog per tag (see the comment at
// the top of backlog.go for what it means and how it is counted).
func (s *Service) TagBacklog(ctx context.Context, ref SubscriptionRef) (*TagBacklog, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	cfg, err := s.config(ctx, ref)
	if err != nil {
		return nil, err
	}
	path := ref.Path()
	c := &s.backlog
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*backlogEntry{}
	}
	ent := c.entries[path]
	if ent != nil {
		select {
		case <-ent.done:
			if time.Since(ent.at) > s.opts.TagBacklog.Cache || ent.err != nil {
				ent = nil
			}
		default: // a scan is running: wait for it
		}
	}
	if ent == nil {
		if len(c.entries) > 10000 {
			clear(c.entries)
		}
		ent = &backlogEntry{done: make(chan struct{})}
		c.entries[path] = ent
		c.mu.Unlock()
		ent.res, ent.err = s.scanBacklog(context.WithoutCancel(ctx), ref, cfg)
		ent.at = time.Now()
		close(ent.done)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-ent.done:
	case <-ctx.Done():
		return nil, storeError(ctx.Err())
	}
	if ent.err != nil {
		return nil, ent.err
	}
	res := *ent.res
	return &res, nil
}

// scanCandidate is a matching message found by the scan.
type scanCandidate struct {
	stateID string
	tags    []string
	publish time.Time
}

func (s *Service) scanBacklog(ctx context.Context, ref SubscriptionRef, cfg *Subscription) (*TagBacklog, error) {
	out := &TagBacklog{Tenant: ref.Tenant, Namespace: ref.Namespace, Topic: ref.Topic, Subscription: ref.Subscription,
		TagFilter: cfg.TagFilter, ScannedAt: time.Now().UTC(), Tags: []TagCounts{}}
	held, heldTags, replicas, err := s.readHeld(ctx, ref.Path())
	if err != nil {
		s.metrics.addStoreError()
		return nil, storeError(err)
	}
	out.Held, out.Replicas = held, replicas

	var cands []scanCandidate
	if s.opts.Peeker == nil {
		out.Error = "no admin API is configured: only what replicas hold is known"
		out.StoppedBy = "unavailable"
	} else {
		cands, err = s.scanBroker(ctx, ref, cfg, out)
		if err != nil {
			out.Error = "reading the backlog from the broker: " + err.Error()
			out.StoppedBy = "error"
			out.Exact = false
		}
	}
	if s.opts.Backlog != nil {
		if b, err := s.opts.Backlog(ctx, ref.TopicName(), ref.Subscription); err == nil {
			out.Broker = &b
		}
	}

	// Delivery states, in batches, to drop what is acknowledged already.
	per := map[string]*TagCounts{}
	seen := make(map[string]struct{}, len(cands))
	const batch = 500
	for i := 0; i < len(cands); i += batch {
		part := cands[i:min(i+batch, len(cands))]
		args := make([]any, 0, 1+len(part))
		args = append(args, s.states.widthArg())
		for _, c := range part {
			args = append(args, c.stateID)
		}
		vals, err := s.states.eval(ctx, stateScript, s.states.space(ref.binding(), cfg.ackTimeout), len(part), args, 1)
		if err != nil {
			s.metrics.addStoreError()
			return nil, storeError(err)
		}
		for j, c := range part {
			if _, dup := seen[c.stateID]; dup {
				out.Scanned.Duplicates++
				continue
			}
			seen[c.stateID] = struct{}{}
			if st := byte(vals[j]); st == 'a' || st == 'd' {
				out.Scanned.Acknowledged++
				continue
			}
			out.Pending++
			tags := c.tags
			if len(tags) == 0 {
				tags = []string{TagNone}
			}
			for _, t := range tags {
				tc := per[t]
				if tc == nil {
					tc = &TagCounts{Tag: t}
					per[t] = tc
				}
				tc.Pending++
				if !c.publish.IsZero() && (tc.Oldest == nil || c.publish.Before(*tc.Oldest)) {
					p := c.publish.UTC()
					tc.Oldest = &p
				}
			}
		}
	}
	for t, h := range heldTags {
		tc := per[t]
		if tc == nil {
			tc = &TagCounts{Tag: t}
			per[t] = tc
		}
		tc.Held = h
	}
	scale := !out.Exact && out.Broker != nil && out.Scanned.Messages > 0
	if scale {
		est := int64(float64(out.Pending) * float64(*out.Broker) / float64(out.Scanned.Messages))
		out.Estimated = &est
	}
	for _, tc := range per {
		if scale {
			est := int64(float64(tc.Pending) * float64(*out.Broker) / float64(out.Scanned.Messages))
			tc.Estimated = &est
		}
		out.Tags = append(out.Tags, *tc)
	}
	slices.SortFunc(out.Tags, func(a, b TagCounts) int {
		if a.Pending != b.Pending {
			if a.Pending > b.Pending {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Tag, b.Tag)
	})
	return out, nil
}

// scanBroker peeks the subscription's unacknowledged entries on the primary
// cluster (every partition) within the scan limits and returns the
// messages that match the filter.
func (s *Service) scanBroker(ctx context.Context, ref SubscriptionRef, cfg *Subscription, out *TagBacklog) ([]scanCandidate, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.TagBacklog.ScanTime)
	defer cancel()
	topic := ref.TopicName()
	parts, err := s.opts.Peeker.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	topics := []string{topic}
	if parts > 0 {
		topics = topics[:0]
		for i := range parts {
			topics = append(topics, topic+"-partition-"+strconv.Itoa(i))
		}
	}
	var cands []scanCandidate
	out.StoppedBy = "end"
	out.Exact = true
	moved := false
	for _, t := range topics {
		before, cerr := s.opts.Peeker.Cursor(ctx, t, ref.Subscription)
		for attempt := 1; ; attempt++ {
			scanned, n := out.Scanned, len(cands)
			var err error
			cands, err = s.scanPartition(ctx, t, ref.Subscription, cfg, out, cands)
			if err != nil || !out.Exact {
				return cands, err
			}
			if cerr != nil {
				// No cursor to compare (internalStats refused, say): as
				// before the check existed, the read counts as it is.
				s.log.Debug("backlog scan: reading the cursor", "topic", t, "err", cerr)
				break
			}
			after, err := s.opts.Peeker.Cursor(ctx, t, ref.Subscription)
			if err != nil || after == before {
				break
			}
			if attempt == backlogScanAttempts {
				moved = true
				break
			}
			// The cursor read after this attempt is the one before the next.
			before = after
			out.Scanned, cands = scanned, cands[:n]
		}
	}
	if moved {
		out.StoppedBy, out.Exact = "moving", false
	}
	return cands, nil
}

// backlogScanAttempts is how often one partition is read while acks keep
// moving its cursor.
const backlogScanAttempts = 2

// scanPartition peeks topic's (one partition's) backlog from position 1 to
// its end or a scan limit, adding the matching messages to cands. A limit
// sets out.Exact false and out.StoppedBy.
func (s *Service) scanPartition(ctx context.Context, topic, subscription string, cfg *Subscription, out *TagBacklog, cands []scanCandidate) ([]scanCandidate, error) {
	for pos := 1; ; pos++ {
		switch {
		case out.Scanned.Messages >= int64(s.opts.TagBacklog.ScanMessages):
			out.StoppedBy, out.Exact = "messages", false
		case out.Scanned.Entries >= int64(s.opts.TagBacklog.ScanEntries):
			out.StoppedBy, out.Exact = "entries", false
		}
		if !out.Exact {
			return cands, nil
		}
		msgs, ok, err := s.opts.Peeker.Peek(ctx, topic, subscription, pos)
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			out.StoppedBy, out.Exact = "time", false
			return cands, nil
		}
		if err != nil {
			return cands, err
		}
		if !ok {
			return cands, nil
		}
		out.Scanned.Entries++
		for _, m := range msgs {
			out.Scanned.Messages++
			tags := wire.ParseTags(m.Properties[wire.PropTags])
			if !cfg.filter.Match(tags) {
				out.Scanned.NotMatching++
				continue
			}
			uid := m.Properties[wire.PropUID]
			if len(uid) > maxUIDBytes {
				uid = ""
			}
			k := copyKey{partition: m.Partition, ledger: m.Ledger, entry: m.Entry, batch: m.BatchIdx}
			var kh string
			if cfg.byKey() {
				kh = keyHashOf(m.Properties)
			}
			cands = append(cands, scanCandidate{stateID: stateIDFor(uid, retryStepOf(m.Properties), k, kh), tags: tags, publish: m.PublishTime})
		}
	}
}
