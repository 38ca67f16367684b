package durable

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/metrics"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
)

// metricSet holds the durability collectors. They always exist (built on a
// private registry when no Registerer is given), so no method checks for
// nil.
type metricSet struct {
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	attempts    *prometheus.CounterVec
	retries     prometheus.Counter
	failovers   prometheus.Counter
	lateAcks    *prometheus.CounterVec
	probes      *prometheus.CounterVec
	spooled     *prometheus.CounterVec
	replayed    *prometheus.CounterVec
	rejected    prometheus.Counter
	corrupt     prometheus.Counter

	// attemptBy caches attempts' children: every message counts one.
	attemptBy *metrics.Children[[2]string, prometheus.Counter] // {cluster, result}
}

func newMetrics(reg prometheus.Registerer, stats func() spool.Stats, now func() time.Time) *metricSet {
	reg = metrics.OrDiscard(reg)
	ns := metrics.Namespace
	m := &metricSet{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "cluster_state",
			Help: "Circuit breaker state per cluster: 0 closed, 1 half-open, 2 open."}, []string{"cluster"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "cluster_transitions_total",
			Help: "Circuit breaker transitions per cluster, by the state entered."}, []string{"cluster", "to"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "produce_attempts_total",
			Help: "Send attempts per cluster by result: ok, retriable, rejected (permanent) or timeout."},
			[]string{"cluster", "result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "produce_retries_total",
			Help: "Attempts after a retriable failure (on the same or another cluster, or the spool)."}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "failover_messages_total",
			Help: "Messages acknowledged by the disaster-recovery cluster (status failover)."}),
		lateAcks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "late_acks_total",
			Help: "Acknowledgements that came after their attempt had timed out: the message may be stored twice (same uid)."},
			[]string{"cluster"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "cluster_probes_total",
			Help: "Health probes per cluster by result: ok or failed."}, []string{"cluster", "result"}),
		spooled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "spool_appends_total",
			Help: "Messages written to the local spool by result: ok, full (spool or disk), error or timeout."},
			[]string{"result"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "spool_replayed_total",
			Help: "Spooled messages acknowledged by a cluster and removed from the spool, per cluster."},
			[]string{"cluster"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "spool_replay_rejected_total",
			Help: "Replays a cluster refused permanently; the record stays in the spool and is tried again later."}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "spool_replay_unreadable_total",
			Help: "Spooled records that failed their checksum when read for replay; they stay in the spool."}),
	}
	m.attemptBy = metrics.NewChildren(func(k [2]string) prometheus.Counter { return m.attempts.WithLabelValues(k[0], k[1]) })
	gauge := func(name, help string, f func(spool.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help},
			func() float64 { return f(stats()) })
	}
	reg.MustRegister(m.state, m.transitions, m.attempts, m.retries, m.failovers, m.lateAcks, m.probes,
		m.spooled, m.replayed, m.rejected, m.corrupt,
		gauge("spool_depth", "Spooled messages not yet replayed.",
			func(s spool.Stats) float64 { return float64(s.Depth) }),
		gauge("spool_oldest_age_seconds", "Age of the oldest spooled message not yet replayed; 0 when none.",
			func(s spool.Stats) float64 {
				if s.Oldest.IsZero() {
					return 0
				}
				return max(0, now().Sub(s.Oldest).Seconds())
			}),
		gauge("spool_bytes", "Bytes in live spool segment files.",
			func(s spool.Stats) float64 { return float64(s.DiskBytes) }),
		gauge("spool_corrupt_tails", "Damaged spool tails set aside when the spool was opened (see the .corrupt files).",
			func(s spool.Stats) float64 { return float64(s.CorruptTails) }),
	)
	return m
}

func (m *metricSet) setState(cluster string, s State) {
	m.state.WithLabelValues(cluster).Set(float64(s))
	m.transitions.WithLabelValues(cluster, s.String()).Inc()
}

func (m *metricSet) initState(cluster string) {
	m.state.WithLabelValues(cluster).Set(float64(Closed))
}

func (m *metricSet) attempt(cluster, result string) {
	m.attemptBy.Get([2]string{cluster, result}).Inc()
}

func (m *metricSet) retry() {
	m.retries.Inc()
}

func (m *metricSet) failover() {
	m.failovers.Inc()
}

func (m *metricSet) lateAck(cluster string) {
	m.lateAcks.WithLabelValues(cluster).Inc()
}

func (m *metricSet) probe(cluster string, ok bool) {
	r := "ok"
	if !ok {
		r = "failed"
	}
	m.probes.WithLabelValues(cluster, r).Inc()
}

func (m *metricSet) spool(result string) {
	m.spooled.WithLabelValues(result).Inc()
}

func (m *metricSet) replay(cluster string) {
	m.replayed.WithLabelValues(cluster).Inc()
}

func (m *metricSet) replayRejected() {
	m.rejected.Inc()
}

func (m *metricSet) replayUnreadable() {
	m.corrupt.Inc()
}
