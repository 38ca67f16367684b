package produce

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/metrics"
)

// PoolMetrics are the producer pool's Prometheus collectors.
type PoolMetrics struct {
	size      prometheus.Gauge
	evictions *prometheus.CounterVec
	createErr prometheus.Counter
}

// NewPoolMetrics registers the pool's metrics on reg; a nil reg gives
// collectors that count but are registered nowhere (tests).
func NewPoolMetrics(reg prometheus.Registerer) *PoolMetrics {
	ns := metrics.Namespace
	m := &PoolMetrics{
		size: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "producer_pool_size",
			Help: "Open producers in the pool."}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "producer_pool_evictions_total",
			Help: "Producers closed by the pool: idle, lru (over producer.maxProducers) or broken."}, []string{"reason"}),
		createErr: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "producer_create_errors_total",
			Help: "Producers that could not be created."}),
	}
	if reg != nil {
		reg.MustRegister(m.size, m.evictions, m.createErr)
	}
	return m
}
