package consume

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/metrics"
	prod "github.com/pulsar-sidecar/pulsar-sidecar/produce" // the name produce is a test helper here
)

// produceToAck is psc_produce_to_ack_seconds{tag}: from the moment a
// message could first be consumed to a consumer's acknowledgement, per
// business code, for the alert "a purchase record is consumed within 1 s".
// The start is the sidecar's psc-accepted-at, or the due time a delayed
// message carries (psc-delay-due, set by the wheel and the level
// forwarders) when it is later, so a delay does not count as slowness.
// Natively delayed messages (Pulsar's deliverAt) carry no due time: their
// delay is counted. Messages without psc-accepted-at (not produced through
// the sidecar) are not observed.
//
// tag is bounded per process: the first MaxTagLabels distinct tags get
// their own value, later ones count as _other, messages without tags as
// _none. A message counts once per tag.
type produceToAck struct {
	vec    *prometheus.HistogramVec
	labels *tagLabels
}

func newProduceToAck(maxTags int) *produceToAck {
	return &produceToAck{
		vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Name: "produce_to_ack_seconds",
			Help: "Time from a message becoming consumable (accepted by the sidecar, or due when delayed by the wheel or a level) to a consumer's ack over the consume API, by tag (business code; at most the tag label limit per process, the rest as _other, none as _none).",
			// From a consumer that acks at once to one that is minutes behind.
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"tag"}),
		labels: newTagLabels(maxTags),
	}
}

// observe records the ack at now of a message with props and tags.
func (p *produceToAck) observe(props map[string]string, tags []string, now time.Time) {
	if p == nil {
		return
	}
	start, err := time.Parse(prod.AcceptedAtLayout, props[prod.PropAcceptedAt])
	if err != nil {
		return
	}
	if due, err := time.Parse(delay.DueLayout, props[delay.PropDelayDue]); err == nil && due.After(start) {
		start = due
	}
	v := max(now.Sub(start), 0).Seconds()
	if len(tags) == 0 {
		p.vec.WithLabelValues(TagNone).Observe(v)
		return
	}
	for _, t := range tags {
		p.vec.WithLabelValues(p.labels.label(t)).Observe(v)
	}
}

// tagLabels gives the first max distinct tags their own label value and
// the rest TagOther.
type tagLabels struct {
	mu   sync.Mutex
	seen map[string]struct{}
	max  int
}

func newTagLabels(maxTags int) *tagLabels {
	return &tagLabels{seen: map[string]struct{}{}, max: maxTags}
}

func (l *tagLabels) label(tag string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[tag]; ok {
		return tag
	}
	if tag == TagNone || tag == TagOther || len(l.seen) >= l.max {
		return TagOther
	}
	l.seen[tag] = struct{}{}
	return tag
}
