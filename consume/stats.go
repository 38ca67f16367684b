package consume

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Outcomes counted per subscription and tag.
const (
	outDelivered    = iota // handed to an HTTP consumer (every delivery)
	outRedelivered         // of those, deliveries after the first
	outFiltered            // did not match the tag filter; acknowledged on the server
	outAcked               // acknowledged by a consumer
	outNacked              // negatively acknowledged by a consumer
	outDeadLettered        // moved to the dead-letter topic
	outDuplicates          // dropped: another copy of the same uid was delivered
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"delivered", "redelivered", "filtered", "acked", "nacked", "deadLettered", "duplicates"}

// Counts are the messages of one subscription (and tag) by outcome.
type Counts struct {
	Delivered    int64 `json:"delivered"`
	Redelivered  int64 `json:"redelivered"`
	Filtered     int64 `json:"filtered"`
	Acked        int64 `json:"acked"`
	Nacked       int64 `json:"nacked"`
	DeadLettered int64 `json:"deadLettered"`
	Duplicates   int64 `json:"duplicates"`
}

// Rates are messages per second by outcome, over Stats.RateWindowSeconds.
type Rates struct {
	Delivered    float64 `json:"delivered"`
	Redelivered  float64 `json:"redelivered"`
	Filtered     float64 `json:"filtered"`
	Acked        float64 `json:"acked"`
	Nacked       float64 `json:"nacked"`
	DeadLettered float64 `json:"deadLettered"`
	Duplicates   float64 `json:"duplicates"`
}

func ratesOf(c Counts, secs float64) Rates {
	r := func(n int64) float64 { return math.Round(float64(n)/secs*1000) / 1000 }
	return Rates{Delivered: r(c.Delivered), Redelivered: r(c.Redelivered), Filtered: r(c.Filtered), Acked: r(c.Acked),
		Nacked: r(c.Nacked), DeadLettered: r(c.DeadLettered), Duplicates: r(c.Duplicates)}
}

func (c *Counts) add(o int, n int64) {
	switch o {
	case outDelivered:
		c.Delivered += n
	case outRedelivered:
		c.Redelivered += n
	case outFiltered:
		c.Filtered += n
	case outAcked:
		c.Acked += n
	case outNacked:
		c.Nacked += n
	case outDeadLettered:
		c.DeadLettered += n
	case outDuplicates:
		c.Duplicates += n
	}
}

// Stats describe one subscription across every replica: counts kept in
// Redis (each replica adds its own every Options.Stats.Interval) and the
// broker's backlog.
type Stats struct {
	Tenant       string `json:"tenant"`
	Namespace    string `json:"namespace"`
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
	// Backlog is the subscription's unacknowledged messages on the primary
	// cluster (every message, matching or not, until the engine has
	// filtered it), when Options.Backlog is set and answered.
	Backlog      *int64 `json:"backlog,omitempty"`
	BacklogError string `json:"backlogError,omitempty"`
	Totals       Counts `json:"totals"`
	// Tags counts per tag: a message with three tags counts for each.
	// Messages without tags are under "_none"; past Options.Stats.MaxTags
	// distinct tags per replica, the rest under "_other".
	Tags map[string]Counts `json:"tags"`
	// Rates are messages per second over the last RateWindowSeconds: the
	// six complete 10-second slots before now, as replicas flushed their
	// counts (every Options.Stats.Interval), so up to that much late.
	// TagRates per tag, as Tags.
	RateWindowSeconds float64          `json:"rateWindowSeconds"`
	Rates             Rates            `json:"rates"`
	TagRates          map[string]Rates `json:"tagRates"`
}

// Rate slots: counts are also added to a hash per slot (10 s,
// Options.Stats.rateSlot), kept for rateSlots+12 slots; rates sum the rateSlots
// complete slots before the current one.
const rateSlots = 6

func (s *Service) rateKey(ref SubscriptionRef, slot int64) string {
	return s.opts.State.KeyPrefix + "crate:" + strconv.FormatInt(s.opts.Stats.rateSlot.Milliseconds(), 10) + ":" + ref.Path() + ":" + strconv.FormatInt(slot, 10)
}

func (s *Service) rateSlotNow() int64 {
	return time.Now().UnixMilli() / s.opts.Stats.rateSlot.Milliseconds()
}

// Tag names used in stats for what has no tag of its own.
const (
	TagNone  = "_none"
	TagOther = "_other"
)

type counts [numOutcomes]int64

// subStats accumulates one subscription's counts on this replica until the
// next flush to Redis and Prometheus.
type subStats struct {
	mu      sync.Mutex
	maxTags int
	seen    map[string]struct{} // tags counted under their own name since the engine started
	total   counts
	tags    map[string]*counts
	pending []statsBatch // flushes that failed, sent again as they were
	applied []string     // guard fields of applied batches, deleted by the next flush
}

func newSubStats(maxTags int) *subStats {
	return &subStats{maxTags: maxTags, seen: map[string]struct{}{}, tags: map[string]*counts{}}
}

func (s *subStats) add(o int, tags []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total[o]++
	if len(tags) == 0 {
		s.bump(TagNone, o)
		return
	}
	for _, t := range tags {
		if _, ok := s.seen[t]; !ok {
			if len(s.seen) >= s.maxTags {
				t = TagOther
			} else {
				s.seen[t] = struct{}{}
			}
		}
		s.bump(t, o)
	}
}

func (s *subStats) bump(tag string, o int) {
	c := s.tags[tag]
	if c == nil {
		c = &counts{}
		s.tags[tag] = c
	}
	c[o]++
}

// statsBatch is one flush's counts, kept with the guard field and rate key
// it was first sent with until Redis is known to have applied it, so that a
// flush whose answer was lost (a timeout after Redis ran it) is sent again
// as the same batch and applied once.
type statsBatch struct {
	guard string
	rkey  string
	total counts
	tags  map[string]*counts
}

// takeFlush returns the batches to send: those whose earlier flush failed,
// then what was counted since the last flush (as a new batch named guard,
// whose counts go to rkey's rate slot), and the guard fields of applied
// batches that can now be deleted.
func (s *subStats) takeFlush(guard, rkey string) (batches []statsBatch, applied []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	batches, s.pending = s.pending, nil
	applied, s.applied = s.applied, nil
	b := statsBatch{guard: guard, rkey: rkey, total: s.total, tags: s.tags}
	s.total, s.tags = counts{}, map[string]*counts{}
	if !b.empty() {
		batches = append(batches, b)
	}
	return batches, applied
}

// putBack keeps batches whose flush failed, and guards not yet deleted,
// for the next flush.
func (s *subStats) putBack(batches []statsBatch, applied []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(batches, s.pending...)
	s.applied = append(applied, s.applied...)
}

// flushed records that batches were applied: their guard fields are
// deleted by the next flush.
func (s *subStats) flushed(batches []statsBatch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range batches {
		s.applied = append(s.applied, b.guard)
	}
}

func (b *statsBatch) empty() bool {
	for _, v := range b.total {
		if v != 0 {
			return false
		}
	}
	return len(b.tags) == 0
}

func (s *Service) statsKey(ref SubscriptionRef) string {
	return s.opts.State.KeyPrefix + "cstats:" + ref.Path()
}

// statsGuardPrefix starts the guard fields flushStatsScript keeps in a
// counts hash; addCounts ignores them (no outcome has this name).
const statsGuardPrefix = "~flush:"

// flushStatsScript adds one batch of counts to one hash, once: the batch's
// guard field (ARGV[1]) is set with the counts, and a batch whose guard is
// already there was applied before and is skipped. ARGV[2] is the hash's
// expiry in milliseconds (0: none); then field and increment pairs. One key
// per call, so that it runs on Redis Cluster where the totals and the rate
// slots live in different slots.
var flushStatsScript = redis.NewScript(flushStatsScriptSource)

const flushStatsScriptSource = `
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 0 then
  return 0
end
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
`

// flushStats adds an engine's counts to Redis and Prometheus. Counts that
// cannot be written to Redis are kept for the next flush, as the same batch:
// a flush that timed out after Redis applied it is not counted twice.
func (s *Service) flushStats(ctx context.Context, e *engine) {
	guard := statsGuardPrefix + strconv.FormatUint(s.node, 36) + ":" + strconv.FormatUint(s.flushSeq.Add(1), 36)
	batches, applied := e.stats.takeFlush(guard, s.rateKey(e.ref, s.rateSlotNow()))
	if len(batches) == 0 && len(applied) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.State.RedisTimeout)
	defer cancel()
	key := s.statsKey(e.ref)
	rateTTL := ((rateSlots + 12) * s.opts.Stats.rateSlot).Milliseconds()
	pipe := s.rdb.Pipeline()
	if len(applied) > 0 {
		pipe.HDel(ctx, key, applied...)
	}
	for i := range batches {
		b := &batches[i]
		var incr []any
		for o, v := range b.total {
			if v != 0 {
				incr = append(incr, outcomeNames[o], v)
			}
		}
		for t, c := range b.tags {
			for o, v := range c {
				if v != 0 {
					incr = append(incr, outcomeNames[o]+"|"+t, v)
				}
			}
		}
		// Eval, not EvalSha: a pipeline cannot fall back when the script
		// is not loaded, and a flush is one call per stats interval.
		flushStatsScript.Eval(ctx, pipe, []string{key}, append([]any{b.guard, 0}, incr...)...)
		flushStatsScript.Eval(ctx, pipe, []string{b.rkey}, append([]any{b.guard, rateTTL}, incr...)...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Warn("stats flush failed; kept for the next one", "subscription", e.path, "err", err)
		e.stats.putBack(batches, applied)
		return
	}
	e.stats.flushed(batches)
	for i := range batches {
		s.metrics.observe(e.path, batches[i].total, batches[i].tags)
	}
}

// Stats returns a subscription's counts and backlog.
func (s *Service) Stats(ctx context.Context, ref SubscriptionRef) (*Stats, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if _, err := s.config(ctx, ref); err != nil {
		return nil, err
	}
	if e := s.existingEngine(ref.Path()); e != nil {
		s.flushStats(ctx, e)
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.State.RedisTimeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	all := pipe.HGetAll(rctx, s.statsKey(ref))
	cur := s.rateSlotNow()
	slots := make([]*redis.MapStringStringCmd, rateSlots)
	for i := range slots {
		slots[i] = pipe.HGetAll(rctx, s.rateKey(ref, cur-1-int64(i)))
	}
	if _, err := pipe.Exec(rctx); err != nil {
		s.metrics.addStoreError()
		return nil, storeError(err)
	}
	st := &Stats{Tenant: ref.Tenant, Namespace: ref.Namespace, Topic: ref.Topic, Subscription: ref.Subscription,
		Tags: map[string]Counts{}, TagRates: map[string]Rates{},
		RateWindowSeconds: float64(rateSlots) * s.opts.Stats.rateSlot.Seconds()}
	addCounts(&st.Totals, st.Tags, all.Val())
	var recent Counts
	recentTags := map[string]Counts{}
	for _, c := range slots {
		addCounts(&recent, recentTags, c.Val())
	}
	secs := st.RateWindowSeconds
	st.Rates = ratesOf(recent, secs)
	for t, c := range recentTags {
		st.TagRates[t] = ratesOf(c, secs)
	}
	if s.opts.Backlog != nil {
		b, err := s.opts.Backlog(ctx, ref.TopicName(), ref.Subscription)
		if err != nil {
			st.BacklogError = err.Error()
		} else {
			st.Backlog = &b
		}
	}
	return st, nil
}

// outcomeIndex maps outcome names to their index.
var outcomeIndex = func() map[string]int {
	m := map[string]int{}
	for i, n := range outcomeNames {
		m[n] = i
	}
	return m
}()

// addCounts adds a stats hash ("outcome" and "outcome|tag" fields) to
// total and tags.
func addCounts(total *Counts, tags map[string]Counts, m map[string]string) {
	for f, v := range m {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		name, tag, hasTag := strings.Cut(f, "|")
		o, ok := outcomeIndex[name]
		if !ok {
			continue
		}
		if !hasTag {
			total.add(o, n)
			continue
		}
		c := tags[tag]
		c.add(o, n)
		tags[tag] = c
	}
}
