package delay

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's Prometheus collectors. They always exist (no
// nil checks on the forward path); EngineOptions.Registerer decides
// whether anyone sees them.
type metrics struct {
	// lateness is how late a delayed message reached its real topic: from
	// its due time to the broker's acknowledgement of the forward, per
	// mode (level, wheel). Native delays are delivered by the broker and
	// are not seen here.
	lateness *prometheus.HistogramVec
	level    prometheus.Observer
	wheel    prometheus.Observer
	// fallbacks counts level and native messages scheduled on the wheel
	// because the primary cluster was down (EngineOptions.PrimaryDown),
	// by the mode they asked for. Both series exist from the start.
	fallbacks *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "psc", Subsystem: "delay", Name: "forward_lateness_seconds",
		Help: "Time from a delayed message's due time to the broker's acknowledgement of its forward into the real topic, by mode (level, wheel).",
		// From a healthy forward (a broker round trip) to a forwarder that
		// was down or stuck for minutes.
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
	}, []string{"mode"})}
	m.level = m.lateness.WithLabelValues(string(ModeLevel))
	m.wheel = m.lateness.WithLabelValues(string(ModeWheel))
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "psc", Subsystem: "delay", Name: "wheel_fallbacks_total",
		Help: "Level and native delayed messages scheduled on the timing wheel because the primary cluster was down, by the mode asked for.",
	}, []string{"mode"})
	m.fallbacks.WithLabelValues(string(ModeLevel))
	m.fallbacks.WithLabelValues(string(ModeNative))
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.lateness, m.fallbacks}
}

// observe records a forward acknowledged at now for a message due at due;
// early is impossible (forwarders never fire early) but clocks of two
// replicas can differ, so it counts as zero.
func observeLateness(o prometheus.Observer, due, now time.Time) {
	o.Observe(max(now.Sub(due), 0).Seconds())
}
