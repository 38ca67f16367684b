package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/metrics"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// Metrics are the data plane's Prometheus collectors. A Server always has
// them (New makes them on a registry nobody reads when Options.Metrics is
// nil), so the methods do not check for nil (ADR 070, one metrics pattern).
type Metrics struct {
	produced       *prometheus.CounterVec
	results        *prometheus.CounterVec
	errors         *prometheus.CounterVec
	ackLatency     prometheus.Histogram
	idemHits       prometheus.Counter
	idemConflicts  *prometheus.CounterVec
	idemUnavail    prometheus.Counter
	idemTakeovers  prometheus.Counter
	idemCompleteEr prometheus.Counter
	rateLimited    *prometheus.CounterVec

	// producedBy caches produced's and results' children by app and
	// status: every message counts one, and a vec lookup hashes its labels
	// each time.
	producedBy *metrics.Children[[2]string, [2]prometheus.Counter]
}

// produceStatuses are the values of the status label of
// psc_produce_messages_total and psc_produce_results_total, created at zero
// so that an alert's rate() sees the first failure.
var produceStatuses = []string{
	string(produce.StatusPersisted), string(produce.StatusScheduled), string(produce.StatusFailover),
	string(produce.StatusSpooled), string(produce.StatusFailed), "duplicate",
}

// NewMetrics registers the data plane's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ns := metrics.Namespace
	m := &Metrics{
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "produce_messages_total",
			Help: "Messages by produce result: persisted, scheduled, failed, or duplicate (answered from the idempotency store)."},
			[]string{"status"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "produce_results_total",
			Help: "Messages by producing app and produce result (the statuses of psc_produce_messages_total). app is an authenticated app of the configuration (dev in protected mode), so the label is bounded; a producer's address is not a label (search the console by clientIp)."},
			[]string{"app", "status"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "http_errors_total",
			Help: "Error answers by stable error code."}, []string{"code"}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "broker_ack_seconds",
			Help:    "Time from handing a message to the producer to the broker's acknowledgement.",
			Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		idemHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "idempotency_hits_total",
			Help: "Messages answered from the idempotency store instead of being produced again."}),
		idemConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "idempotency_conflicts_total",
			Help: "Idempotency keys refused: reused (another payload) or in_progress (still in flight at the deadline)."},
			[]string{"reason"}),
		idemUnavail: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "idempotency_unavailable_total",
			Help: "Messages produced without the idempotency check because the store was unreachable (duplicateRisk)."}),
		idemTakeovers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "idempotency_takeovers_total",
			Help: "Keyed messages produced again, with their key's uid and duplicateRisk, after taking over a failed attempt or one whose owner's lease ran out."}),
		idemCompleteEr: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "idempotency_record_errors_total",
			Help: "Results that could not be written to the idempotency store after the broker acknowledged."}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "rate_limited_total",
			Help: "Requests refused by an app's rate limit."}, []string{"app"}),
	}
	m.producedBy = metrics.NewChildren(func(k [2]string) [2]prometheus.Counter {
		return [2]prometheus.Counter{m.produced.WithLabelValues(k[1]), m.results.WithLabelValues(k[0], k[1])}
	})
	for _, st := range produceStatuses {
		m.produced.WithLabelValues(st)
	}
	reg.MustRegister(m.produced, m.results, m.errors, m.ackLatency,
		m.idemHits, m.idemConflicts, m.idemUnavail, m.idemTakeovers, m.idemCompleteEr, m.rateLimited)
	return m
}

// KnownApps creates psc_produce_results_total and psc_rate_limited_total
// at zero for the apps of the configuration, so the per-app alert rules
// count an app's first failure or refusal.
func (m *Metrics) KnownApps(apps ...string) {
	for _, app := range apps {
		for _, st := range produceStatuses {
			m.results.WithLabelValues(app, st)
		}
		m.rateLimited.WithLabelValues(app)
	}
}

// addProduced counts one message of app with result status.
func (m *Metrics) addProduced(app, status string) {
	cs := m.producedBy.Get([2]string{app, status})
	cs[0].Inc()
	cs[1].Inc()
}

// AddError counts an error answer by its stable code in
// psc_http_errors_total, for the APIs mounted beside the data plane that
// answer errors themselves (consume, console). Codes are constants of
// those APIs, so the label is bounded.
func (m *Metrics) AddError(code string) {
	m.errors.WithLabelValues(code).Inc()
}

func (m *Metrics) observeAck(seconds float64) {
	m.ackLatency.Observe(seconds)
}

func (m *Metrics) addIdemHit() {
	m.idemHits.Inc()
}

func (m *Metrics) addIdemConflict(reason string) {
	m.idemConflicts.WithLabelValues(reason).Inc()
}

func (m *Metrics) addIdemUnavailable() {
	m.idemUnavail.Inc()
}

func (m *Metrics) addIdemTakeover() {
	m.idemTakeovers.Inc()
}

func (m *Metrics) addIdemRecordError() {
	m.idemCompleteEr.Inc()
}

func (m *Metrics) addRateLimited(app string) {
	m.rateLimited.WithLabelValues(app).Inc()
}
