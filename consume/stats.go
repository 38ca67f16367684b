package consume

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/metrics"
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
// Redis (each replica adds its own every Options.StatsInterval) and the
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
	// Messages without tags are under "_none"; past Options.MaxStatsTags
	// distinct tags per replica, the rest under "_other".
	Tags map[string]Counts `json:"tags"`
	// Rates are messages per second over the last RateWindowSeconds: the
	// six complete 10-second slots before now, as replicas flushed their
	// counts (every Options.StatsInterval), so up to that much late.
	// TagRates per tag, as Tags.
	RateWindowSeconds float64          `json:"rateWindowSeconds"`
	Rates             Rates            `json:"rates"`
	TagRates          map[string]Rates `json:"tagRates"`
}

// Rate slots: counts are also added to a hash per slot (10 s,
// Options.rateSlot), kept for rateSlots+12 slots; rates sum the rateSlots
// complete slots before the current one.
const rateSlots = 6

func (s *Service) rateKey(ref SubscriptionRef, slot int64) string {
	return s.opts.KeyPrefix + "crate:" + strconv.FormatInt(s.opts.rateSlot.Milliseconds(), 10) + ":" + ref.Path() + ":" + strconv.FormatInt(slot, 10)
}

func (s *Service) rateSlotNow() int64 { return time.Now().UnixMilli() / s.opts.rateSlot.Milliseconds() }

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
	return s.opts.KeyPrefix + "cstats:" + ref.Path()
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
	ctx, cancel := context.WithTimeout(ctx, s.opts.RedisTimeout)
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
	pipe.PExpire(ctx, rkey, (rateSlots+12)*s.opts.rateSlot)
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
	rctx, cancel := context.WithTimeout(ctx, s.opts.RedisTimeout)
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
		RateWindowSeconds: float64(rateSlots) * s.opts.rateSlot.Seconds()}
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

// BacklogFunc returns a subscription's backlog (unacknowledged messages)
// on the primary cluster.
type BacklogFunc func(ctx context.Context, topic, subscription string) (int64, error)

// AdminBacklog reads backlogs through the Pulsar admin API: topic stats,
// or partitioned stats summed over partitions.
func AdminBacklog(admin pulsaradmin.Client) BacklogFunc {
	return func(ctx context.Context, topic, subscription string) (int64, error) {
		tn, err := utils.GetTopicName(topic)
		if err != nil {
			return 0, err
		}
		var subs map[string]utils.SubscriptionStats
		meta, err := admin.Topics().GetMetadataWithContext(ctx, *tn)
		if err == nil && meta.Partitions > 0 {
			ps, err := admin.Topics().GetPartitionedStatsWithContext(ctx, *tn, false)
			if err != nil {
				return 0, err
			}
			subs = ps.Subscriptions
		} else {
			ts, err := admin.Topics().GetStatsWithContext(ctx, *tn)
			if err != nil {
				return 0, err
			}
			subs = ts.Subscriptions
		}
		s, ok := subs[subscription]
		if !ok {
			return 0, fmt.Errorf("no subscription %q on %s", subscription, topic)
		}
		return s.MsgBacklog, nil
	}
}

// Metrics are the consume engine's Prometheus collectors. A nil *Metrics
// records nothing.
type Metrics struct {
	messages    *prometheus.CounterVec
	tagMessages *prometheus.CounterVec
	tagHeld     gaugeSet
	tagBacklog  gaugeSet
	backlogScan gaugeSet
	engines     prometheus.Gauge
	storeErrors prometheus.Counter
	toAck       *produceToAck

	mu      sync.Mutex
	labeled map[string]map[string]struct{} // per subscription, tags that have their own label
	maxTags int
}

// NewMetrics registers the consume metrics on reg. At most maxTagLabels
// distinct tags per subscription get their own label value; the rest are
// counted under "_other".
func NewMetrics(reg prometheus.Registerer, maxTagLabels int) *Metrics {
	ns := metrics.Namespace
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "consume_messages_total",
			Help: "Messages by subscription (tenant/namespace/topic/subscription) and outcome: delivered, redelivered, filtered, acked, nacked, deadLettered, duplicates."},
			[]string{"subscription", "outcome"}),
		tagMessages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "consume_tag_messages_total",
			Help: "Messages by subscription, tag and outcome; a message counts once per tag. Tags beyond the per-subscription label limit are counted as _other, messages without tags as _none."},
			[]string{"subscription", "tag", "outcome"}),
		tagHeld: newGaugeSet(prometheus.GaugeOpts{Namespace: ns, Name: "consume_tag_held_messages",
			Help: "Matching messages this replica holds, by subscription, tag and state: ready (waiting for a receive), inflight (delivered, lease running), other (held off by another delivery, being dead-lettered). Sum over replicas. At most the per-subscription label limit of tags, the rest as _other."},
			[]string{"subscription", "tag", "state"}),
		tagBacklog: newGaugeSet(prometheus.GaugeOpts{Namespace: ns, Name: "consume_tag_backlog_messages",
			Help: "Per-tag backlog from the last scan of the subscription: matching messages not acknowledged (ADR 060). Exported by the replica that scanned last; aggregate with max by (subscription, tag). At most the per-subscription label limit of tags (the largest), the rest summed as _other. Counts of the scanned head only when consume_tag_backlog_scan{value=\"exact\"} is 0."},
			[]string{"subscription", "tag"}),
		backlogScan: newGaugeSet(prometheus.GaugeOpts{Namespace: ns, Name: "consume_tag_backlog_scan",
			Help: "The last per-tag backlog scan of a subscription, by value: exact (1 when it read the whole backlog, 0 when a scan limit stopped it), messages (how many it read), timestamp (Unix seconds when it ran)."},
			[]string{"subscription", "value"}),
		engines: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "consume_active_subscriptions",
			Help: "Subscriptions this replica is consuming (each with its own Pulsar consumers)."}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "consume_store_errors_total",
			Help: "Consume requests that failed because Redis did not answer."}),
		toAck:   newProduceToAck(maxTagLabels),
		labeled: map[string]map[string]struct{}{},
		maxTags: maxTagLabels,
	}
	reg.MustRegister(m.messages, m.tagMessages, m.tagHeld.vec, m.tagBacklog.vec, m.backlogScan.vec, m.engines, m.storeErrors, m.toAck.vec)
	return m
}

func (m *Metrics) observe(sub string, total counts, tags map[string]*counts) {
	if m == nil {
		return
	}
	for o, v := range total {
		if v != 0 {
			m.messages.WithLabelValues(sub, outcomeNames[o]).Add(float64(v))
		}
	}
	m.mu.Lock()
	seen := m.labeled[sub]
	if seen == nil {
		seen = map[string]struct{}{}
		m.labeled[sub] = seen
	}
	labels := make(map[string]string, len(tags))
	for t := range tags {
		if _, ok := seen[t]; ok || t == TagNone || t == TagOther {
			labels[t] = t
		} else if len(seen) < m.maxTags {
			seen[t] = struct{}{}
			labels[t] = t
		} else {
			labels[t] = TagOther
		}
	}
	m.mu.Unlock()
	for t, c := range tags {
		for o, v := range c {
			if v != 0 {
				m.tagMessages.WithLabelValues(sub, labels[t], outcomeNames[o]).Add(float64(v))
			}
		}
	}
}

// setHeld replaces a subscription's held gauges with tags (nil: removes them).
func (m *Metrics) setHeld(sub string, tags map[string]HeldCounts) {
	if m == nil {
		return
	}
	m.tagHeld.replace(sub, func(set func(v float64, labels ...string)) {
		for t, h := range capTags(tags, m.maxTags) {
			set(float64(h.Ready), t, "ready")
			set(float64(h.InFlight), t, "inflight")
			set(float64(h.Other), t, "other")
		}
	})
}

// setBacklog replaces a subscription's backlog gauges with a scan's result
// (nil: removes them).
func (m *Metrics) setBacklog(sub string, b *TagBacklog) {
	if m == nil {
		return
	}
	m.tagBacklog.replace(sub, func(set func(v float64, labels ...string)) {
		if b == nil {
			return
		}
		var other int64
		hasOther := false
		for i, t := range b.Tags { // largest first
			if i < m.maxTags && t.Tag != TagOther {
				set(float64(t.Pending), t.Tag)
			} else {
				other += t.Pending
				hasOther = true
			}
		}
		if hasOther {
			set(float64(other), TagOther)
		}
	})
	m.backlogScan.replace(sub, func(set func(v float64, labels ...string)) {
		if b == nil {
			return
		}
		exact := 0.0
		if b.Exact {
			exact = 1
		}
		set(exact, "exact")
		set(float64(b.Scanned.Messages), "messages")
		set(float64(b.ScannedAt.Unix()), "timestamp")
	})
}

// gaugeSet is a GaugeVec whose first label is the subscription, updated a
// subscription at a time: replace sets the new series, then deletes only
// those of the previous call that are gone, so a scrape never finds the
// subscription's series missing, and no call scans the whole vector.
type gaugeSet struct {
	vec  *prometheus.GaugeVec
	mu   sync.Mutex
	prev map[string]map[string][]string // subscription -> series key -> label values
}

func newGaugeSet(opts prometheus.GaugeOpts, labels []string) gaugeSet {
	return gaugeSet{vec: prometheus.NewGaugeVec(opts, labels), prev: map[string]map[string][]string{}}
}

func (g *gaugeSet) replace(sub string, fill func(set func(v float64, labels ...string))) {
	g.mu.Lock()
	defer g.mu.Unlock()
	next := map[string][]string{}
	fill(func(v float64, labels ...string) {
		lvs := append([]string{sub}, labels...)
		g.vec.WithLabelValues(lvs...).Set(v)
		next[strings.Join(lvs, "\x00")] = lvs
	})
	for k, lvs := range g.prev[sub] {
		if _, ok := next[k]; !ok {
			g.vec.DeleteLabelValues(lvs...)
		}
	}
	if len(next) == 0 {
		delete(g.prev, sub)
	} else {
		g.prev[sub] = next
	}
}

func (m *Metrics) setEngines(n int) {
	if m != nil {
		m.engines.Set(float64(n))
	}
}

// observeAck records a consumer's ack at now of a message (see
// produceToAck).
func (m *Metrics) observeAck(props map[string]string, tags []string, now time.Time) {
	if m != nil {
		m.toAck.observe(props, tags, now)
	}
}

func (m *Metrics) addStoreError() {
	if m != nil {
		m.storeErrors.Inc()
	}
}
