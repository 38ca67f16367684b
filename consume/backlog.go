package consume

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
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
	// for Options.TagBacklogCache.
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

// PeekedMessage is one message of a subscription's backlog, as the admin
// API shows it.
type PeekedMessage struct {
	Partition   int32 // 0 on a non-partitioned topic
	Ledger      int64
	Entry       int64
	BatchIdx    int32 // index in the batch; 0 when the entry is not a batch, as pulsar-client-go numbers it
	Properties  map[string]string
	PublishTime time.Time
}

// Peeker reads a subscription's unacknowledged entries in order.
// Implementations are safe for concurrent use.
type Peeker interface {
	// Partitions is the topic's partition count; 0 when not partitioned.
	Partitions(ctx context.Context, topic string) (int, error)
	// Peek returns the messages of the pos-th (1-based) unacknowledged
	// entry of subscription on topic (a partition's name on a partitioned
	// topic), and false when the backlog has fewer entries.
	Peek(ctx context.Context, topic, subscription string, pos int) ([]PeekedMessage, bool, error)
	// Cursor returns a token of the subscription's cursor on topic that
	// changes whenever acknowledgements remove entries from its backlog;
	// "" when the topic has no such subscription.
	Cursor(ctx context.Context, topic, subscription string) (string, error)
}

// AdminPeeker peeks through the Pulsar admin REST API at baseURL (the
// broker's web service URL), with token as its bearer token when not
// empty. It reads batches itself: pulsaradmin's PeekMessages gives every
// message of a batch the properties of the last one.
func AdminPeeker(baseURL, token string, hc *http.Client) Peeker {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &adminPeeker{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

type adminPeeker struct {
	base, token string
	hc          *http.Client
}

func (p *adminPeeker) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		return nil, err
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	return p.hc.Do(req)
}

func restPath(topic string) (string, error) {
	tn, err := utils.GetTopicName(topic)
	if err != nil {
		return "", err
	}
	return "/admin/v2/" + tn.GetRestPath(), nil
}

func (p *adminPeeker) Partitions(ctx context.Context, topic string) (int, error) {
	rp, err := restPath(topic)
	if err != nil {
		return 0, err
	}
	resp, err := p.get(ctx, rp+"/partitions")
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("partitions of %s: HTTP %d", topic, resp.StatusCode)
	}
	var meta struct {
		Partitions int `json:"partitions"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&meta); err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	return meta.Partitions, nil
}

func (p *adminPeeker) Peek(ctx context.Context, topic, subscription string, pos int) ([]PeekedMessage, bool, error) {
	rp, err := restPath(topic)
	if err != nil {
		return nil, false, err
	}
	resp, err := p.get(ctx, rp+"/subscription/"+url.PathEscape(subscription)+"/position/"+strconv.Itoa(pos))
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, false, fmt.Errorf("peek %s %s at %d: HTTP %d: %s", topic, subscription, pos, resp.StatusCode, bytes.TrimSpace(body))
	}
	body, err := wire.ReadEntry(resp.Body)
	if err != nil {
		return nil, false, fmt.Errorf("peek %s %s at %d: %w", topic, subscription, pos, err)
	}
	msgs, err := parsePeeked(topic, resp.Header, body)
	return msgs, err == nil, err
}

// maxStatsBytes bounds one internalStats answer (it lists every ledger and cursor).
const maxStatsBytes = 16 << 20

func (p *adminPeeker) Cursor(ctx context.Context, topic, subscription string) (string, error) {
	rp, err := restPath(topic)
	if err != nil {
		return "", err
	}
	resp, err := p.get(ctx, rp+"/internalStats")
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("internal stats of %s: HTTP %d: %s", topic, resp.StatusCode, bytes.TrimSpace(body))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatsBytes))
	if err != nil {
		return "", err
	}
	return cursorToken(body, subscription)
}

// cursorToken reads subscription's cursor from a topic's internalStats
// answer: its mark-delete position and individually deleted ranges, which
// together say which entries acknowledgements removed.
func cursorToken(body []byte, subscription string) (string, error) {
	var st struct {
		Cursors map[string]struct {
			MarkDelete string `json:"markDeletePosition"`
			Deleted    string `json:"individuallyDeletedMessages"`
		} `json:"cursors"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return "", fmt.Errorf("internal stats: %w", err)
	}
	c, ok := st.Cursors[subscription]
	if !ok {
		return "", nil
	}
	return c.MarkDelete + " " + c.Deleted, nil
}

// parsePeeked reads one peeked entry (wire.DecodeEntry): its messages,
// each with the entry's position and its own properties.
func parsePeeked(topic string, h http.Header, body []byte) ([]PeekedMessage, error) {
	part := int32(0)
	if tn, err := utils.GetTopicName(topic); err == nil && tn.GetPartitionIndex() >= 0 {
		part = int32(tn.GetPartitionIndex())
	}
	ledger, entry, err := parseLedgerEntry(h.Get("X-Pulsar-Message-ID"))
	if err != nil {
		return nil, err
	}
	msgs, err := wire.DecodeEntry(h, body)
	if err != nil {
		return nil, fmt.Errorf("peeked entry %d:%d: %w", ledger, entry, err)
	}
	out := make([]PeekedMessage, len(msgs))
	for i, m := range msgs {
		out[i] = PeekedMessage{Partition: part, Ledger: ledger, Entry: entry, BatchIdx: m.BatchIndex,
			Properties: m.Properties, PublishTime: m.PublishTime}
	}
	return out, nil
}

func parseLedgerEntry(s string) (int64, int64, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 {
		return 0, 0, fmt.Errorf("peeked message id %q", s)
	}
	l, err1 := strconv.ParseInt(parts[0], 10, 64)
	e, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("peeked message id %q", s)
	}
	return l, e, nil
}

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

func (s *Service) heldKey(path string) string { return s.opts.KeyPrefix + "cheld:" + path }

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
	ctx, cancel := context.WithTimeout(ctx, s.opts.RedisTimeout)
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
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.RedisTimeout)
	defer cancel()
	_ = s.rdb.HDel(ctx, s.heldKey(path), bindingHex(s.node)).Err()
	s.metrics.setHeld(path, nil)
}

// heldFresh is how old a replica's report may be and still count.
func (s *Service) heldFresh() time.Duration { return 3*s.opts.StatsInterval + 5*time.Second }

// readHeld sums the fresh reports of every replica.
func (s *Service) readHeld(ctx context.Context, path string) (HeldCounts, map[string]HeldCounts, int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RedisTimeout)
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
			if time.Since(ent.at) > s.opts.TagBacklogCache || ent.err != nil {
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
	ctx, cancel := context.WithTimeout(ctx, s.opts.TagBacklogScanTime)
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
		case out.Scanned.Messages >= int64(s.opts.TagBacklogScanMessages):
			out.StoppedBy, out.Exact = "messages", false
		case out.Scanned.Entries >= int64(s.opts.TagBacklogScanEntries):
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

// backlogLoop scans every registered subscription's per-tag backlog each
// TagBacklogInterval for Prometheus. One replica scans a subscription per
// interval (a Redis lock) and exports the result; the others drop their
// gauges of it, so each subscription's series come from one replica.
func (s *Service) backlogLoop() {
	tick := time.NewTicker(s.opts.TagBacklogInterval)
	defer tick.Stop()
	exported := map[string]bool{}
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.RedisTimeout)
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
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.RedisTimeout)
			mine, err := s.rdb.SetNX(ctx, s.opts.KeyPrefix+"ctagscan:"+path, bindingHex(s.node), s.opts.TagBacklogInterval*9/10).Result()
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
