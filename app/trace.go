package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// startTrace opens the trace store and the pipeline that feeds it, unless
// a recorder was given with WithRecorder (tests) or trace.store is off. The
// pipeline never blocks the data plane: a bounded queue, batch writes, and
// a durable outbox under <dataDir>/trace/outbox while the store is slow or
// down (see tracer/doc.go).
func (a *App) startTrace(ctx context.Context) error {
	cfg := &a.cfg.Trace
	if cfg.Store == "off" {
		return nil
	}
	dir := filepath.Join(a.cfg.DataDir, "trace")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("app: trace directory: %w", err)
	}
	switch cfg.Store {
	case "elasticsearch":
		eo, err := elasticConnection(&cfg.Elasticsearch)
		if err != nil {
			return err
		}
		eo.Addresses = splitList(cfg.Elasticsearch.Addresses)
		eo.IndexPrefix = cfg.Elasticsearch.IndexPrefix
		eo.Logger = a.log
		eo.BreakerThreshold = cfg.Elasticsearch.BreakerThreshold
		eo.BreakerCooldown = cfg.Elasticsearch.BreakerCooldown
		es, err := tracer.NewElastic(eo)
		if err != nil {
			return fmt.Errorf("app: elasticsearch trace store: %w", err)
		}
		// A cluster that is down at start does not stop the sidecar: the
		// pipeline spills to the outbox and replays once it answers.
		if err := es.Start(ctx); err != nil {
			a.log.Warn("elasticsearch trace store not reachable at start; events wait in the outbox", "err", err)
		}
		a.traceStore = es
	default:
		path := cfg.SQLitePath
		if path == "" {
			path = filepath.Join(dir, "events.db")
		}
		st, err := tracer.OpenSQLite(ctx, path)
		if err != nil {
			return fmt.Errorf("app: sqlite trace store %s: %w", path, err)
		}
		a.traceStore = st
	}
	if a.rec != nil {
		return nil // a recorder given by the embedder; the store still serves the console
	}
	budget := cfg.IngestBudget
	if budget == 0 {
		budget = -1 // the pipeline's "never defer"
	}
	p, err := tracer.NewPipeline(tracer.Options{
		Sink:             a.traceStore,
		Dir:              filepath.Join(dir, "outbox"),
		QueueSize:        cfg.QueueSize,
		IngestBudget:     budget,
		BusyCPUShare:     cfg.IngestBusyCPU,
		DeferMaxBytes:    int64(cfg.DeferMaxBytes),
		DeferMaxAge:      cfg.DeferMaxAge,
		MaxOutboxBytes:   int64(cfg.OutboxMaxBytes),
		ReplayMinBackoff: cfg.ReplayMinBackoff,
		ReplayMaxBackoff: cfg.ReplayMaxBackoff,
		Registerer:       a.reg,
		Logger:           a.log, // the pipeline names itself
	})
	if err != nil {
		return fmt.Errorf("app: trace pipeline: %w", err)
	}
	p.Start()
	a.pipeline = p
	a.rec = p
	if lr := logRecorder(cfg.LogLevel, a.log); lr != (tracer.Nop{}) {
		a.rec = multiRecorder{p, lr}
	}
	a.retentionDone = make(chan struct{})
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.retentionStop = cancel
	go a.retention(rctx)
	return nil
}

// retention deletes events older than trace.retention, hourly.
func (a *App) retention(ctx context.Context) {
	defer close(a.retentionDone)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		n, err := a.traceStore.DeleteBefore(dctx, time.Now().Add(-a.cfg.Trace.Retention))
		cancel()
		if err != nil {
			a.log.Warn("trace retention failed", "err", err)
		} else if n != 0 {
			a.log.Info("trace retention", "deleted", n)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// stopTrace flushes the pipeline (what the store does not take in time
// stays in the outbox for the next start) and closes the store.
func (a *App) stopTrace(ctx context.Context, step func(string, func() error)) {
	if a.retentionStop != nil {
		a.retentionStop()
		<-a.retentionDone
	}
	if a.pipeline != nil {
		step("trace pipeline", func() error { return a.pipeline.Close(ctx) })
	}
	if a.consoleAdmin != nil {
		step("console admin client", a.consoleAdmin.Close)
	}
	if a.traceStore != nil {
		step("trace store", a.traceStore.Close)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// multiRecorder sends every event to each recorder (the store pipeline
// and the log lines).
type multiRecorder []tracer.Recorder

func (m multiRecorder) Record(ev tracer.Event) {
	for _, r := range m {
		r.Record(ev)
	}
}
