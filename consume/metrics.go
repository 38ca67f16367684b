package consume

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/metrics"
)

// Metrics are the consume engine's Prometheus collectors. They always
// exist (the Service builds them on a private registry when
// Options.Registerer is nil), so no method checks for nil.
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
	m.engines.Set(float64(n))
}

// observeAck records a consumer's ack at now of a message (see
// produceToAck).
func (m *Metrics) observeAck(props map[string]string, tags []string, now time.Time) {
	m.toAck.observe(props, tags, now)
}

func (m *Metrics) addStoreError() {
	m.storeErrors.Inc()
}
