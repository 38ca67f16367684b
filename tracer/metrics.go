package tracer

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names share this prefix: pulsar_sidecar_tracer_.
const (
	metricNamespace = "pulsar_sidecar"
	metricSubsystem = "tracer"
)

// register exposes the pipeline's counters. They are read from the atomics at
// scrape time, so Record pays nothing for them.
func (p *Pipeline) register(reg prometheus.Registerer) error {
	counter := func(name, help string, v *atomic.Uint64, labels prometheus.Labels) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: name, Help: help, ConstLabels: labels,
		}, func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: name, Help: help,
		}, f)
	}
	cs := []prometheus.Collector{
		counter("events_recorded_total", "Trace events accepted by Record.", &p.c.recorded, nil),
		counter("events_overflowed_total", "Trace events that went through the overflow buffer because the queue was full.", &p.c.overflowed, nil),
		counter("events_dropped_total", "Trace events refused by Record.", &p.c.droppedFull, prometheus.Labels{"reason": "queue_full"}),
		counter("events_dropped_total", "Trace events refused by Record.", &p.c.droppedClosed, prometheus.Labels{"reason": "closed"}),
		counter("events_stored_total", "Trace events stored by the sink.", &p.c.written, prometheus.Labels{"path": "direct"}),
		counter("events_stored_total", "Trace events stored by the sink.", &p.c.replayed, prometheus.Labels{"path": "outbox"}),
		counter("events_spilled_total", "Trace events appended to the local outbox.", &p.c.spilled, nil),
		counter("events_rejected_total", "Trace events the sink refused for good (not retried).", &p.c.rejected, nil),
		counter("events_spill_failed_total", "Trace events lost because the outbox could not take them.", &p.c.spillFailed, nil),
		counter("outbox_corrupt_records_total", "Outbox records that could not be read back.", &p.c.corrupt, nil),
		counter("sink_failures_total", "Sink writes that failed in whole or in part.", &p.c.sinkFailures, nil),
		gauge("queue_length", "Trace events waiting in the queue.", func() float64 { return float64(len(p.queue)) }),
		gauge("overflow_length", "Trace events waiting in the overflow buffer.", func() float64 { return float64(len(p.overflow)) }),
		gauge("outbox_bytes", "Bytes waiting in the outbox.", func() float64 { b, _ := p.ob.size(); return float64(b) }),
		gauge("outbox_segments", "Segment files waiting in the outbox.", func() float64 { _, n := p.ob.size(); return float64(n) }),
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("tracer: register metrics: %w", err)
		}
	}
	p.collectors = cs
	return nil
}
