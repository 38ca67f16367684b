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

// drain returns and resets what was counted since the last drain.
func (s *subStats) drain() (counts, map[string]*counts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	total, tags := s.total, s.tags
	s.total, s.tags = counts{}, map[string]*counts{}
	return total, tags
}

func (s *subStats) undrain(total counts, tags map[string]*counts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range total {
		s.total[i] += total[i]
	}
	for t, c := range tags {
		for i := range c {
			if c[i] != 0 {
				s.bumpN(t, i, c[i])
			}
		}
	}
}

func (s *subStats) bumpN(tag string, o int, n int64) {
	c := s.tags[tag]
	if c == nil {
		c = &counts{}
		s.tags[tag] = c
	}
	c[o] += n
}

func (s *Service) statsKey(ref SubscriptionRef) string {
	return s.opts.State.KeyPrefix + "cstats:" + ref.Path()
}

// flushStats adds an engine's counts to Redis and Prometheus. Counts that
// cannot be written to Redis are kept for the next flush.
func (s *Service) flushStats(ctx context.Context, e *engine) {
	total, tags := e.stats.drain()
	empty := true
	for _, v := range total {
		if v != 0 {
			empty = false
		}
	}
	if empty && len(tags) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.State.RedisTimeout)
	defer cancel()
	key := s.statsKey(e.ref)
	rkey := s.rateKey(e.ref, s.rateSlotNow())
	pipe := s.rdb.Pipeline()
	for o, v := range total {
		if v != 0 {
			pipe.HIncrBy(ctx, key, outcomeNames[o], v)
			pipe.HIncrBy(ctx, rkey, outcomeNames[o], v)
		}
	}
	for t, c := range tags {
		for o, v := range c {
			if v != 0 {
				pipe.HIncrBy(ctx, key, outcomeNames[o]+"|"+t, v)
				pipe.HIncrBy(ctx, rkey, outcomeNames[o]+"|"+t, v)
			}
		}
	}
	pipe.PExpire(ctx, rkey, (rateSlots+12)*s.opts.Stats.rateSlot)
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Warn("stats flush failed; kept for the next one", "subscription", e.path, "err", err)
		e.stats.undrain(total, tags)
		return
	}
	s.metrics.observe(e.path, total, tags)
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
