package tracer

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names share this prefix: psc_trace_ (psc is the namespace of every
// sidecar metric, internal/metrics.Namespace; tracer does not import it to
// stay free of the app's plumbing).
const (
	metricNamespace = "psc"
	metricSubsystem = "trace"
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
		gauge("outbox_bytes", "Bytes of outbox segments not yet fully replayed (a segment is deleted, and its bytes leave this gauge, once all its records are stored).", func() float64 { b, _ := p.ob.size(); return float64(b) }),
		gauge("outbox_segments", "Segment files waiting in the outbox.", func() float64 { _, n := p.ob.size(); return float64(n) }),
		counter("events_deferred_total", "Trace events parked in the outbox by the ingest budget while the data plane was busy (a subset of events_spilled_total).", &p.c.deferred, nil),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "ingest_cpu_seconds_total",
			Help: "CPU time spent writing trace events to the store.",
		}, func() float64 { return time.Duration(p.c.ingestCPU.Load()).Seconds() }),
		gauge("lag_seconds", "Age of the oldest trace event waiting in the outbox for the store; 0 when none waits.", func() float64 { return p.lag(p.now()).Seconds() }),
		gauge("ingest_throttled", "1 while the ingest budget holds trace writes back because the data plane is busy.", func() float64 { return b2f(p.gov.throttling(p.now())) }),
		gauge("defer_limit_reached", "1 while the outbox is past trace.deferMaxBytes or trace.deferMaxAge, so the store is written at full speed whatever the load.",
			func() float64 { l, _ := p.gov.atLimit(); return b2f(l) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricNamespace, Subsystem: metricSubsystem, Name: "defer_limit_reached_total",
			Help: "Times the outbox passed trace.deferMaxBytes or trace.deferMaxAge, so the store was written at full speed whatever the load.",
		}, func() float64 { _, n := p.gov.atLimit(); return float64(n) }),
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

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
