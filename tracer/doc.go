// Package tracer records the lifecycle of every message (accepted,
// persisted, delivered, acked, dead-lettered...) and answers the console's
// questions about it: what happened to message M, was it consumed by
// subscription S, by whom and when.
//
// # Parts
//
//   - Event and Type: the event model. ComputeID gives each event a
//     deterministic id, so that writing it twice stores it once.
//   - Recorder: the one method the data plane calls, Record(Event). It never
//     blocks, does no I/O and cannot fail visibly. Nop and LogRecorder are
//     trivial implementations; Pipeline is the production one.
//   - Pipeline: a bounded queue, a batching writer to a Sink, a local
//     durable outbox (checksummed append-only segment files) that takes the
//     batches while the sink fails and is replayed in order when it recovers,
//     and an overflow buffer that spills to the outbox when the queue is
//     full. Every event is accounted for in Stats and in Prometheus metrics
//     (psc_trace_*): stored, spilled, replayed, rejected by the
//     sink for good, lost to a full outbox, or dropped because both buffers
//     were full. None is lost silently. While the data plane is busy, the
//     sink gets a CPU budget (Options.IngestBudget) and batches beyond it
//     wait in the outbox until the data plane is quiet (the governor, ADR
//     020); the lag is a metric, and past DeferMaxBytes or DeferMaxAge the
//     sink runs at full speed again.
//   - Store: writes plus the queries (ByUID, ByMessageID, ByKey, ByTopic
//     over a time range, Search by any combination of topic, time range,
//     uid, message id, key, tag, app, client IP, subscription and event
//     types, SearchMessages for one row per message with its lifecycle
//     status (StatusOf) and events, Consumption per subscription,
//     DeleteBefore for retention), paginated with opaque cursors. SQLite is the embedded
//     store (one file, WAL, a table clustered on time and id, schema
//     version 2, migrated in place from version 1); Elastic is the Elasticsearch one (daily
//     indices behind a composable template, _bulk create with the event id,
//     per-item retry, a circuit breaker). Both pass the same contract suite
//     (package storetest); package esfake is the in-memory Elasticsearch
//     the adapter is tested against.
//
// # Wiring
//
//	store, err := tracer.OpenSQLite(ctx, filepath.Join(dataDir, "trace.db"))
//	// or: store, err := tracer.NewElastic(tracer.ElasticOptions{Addresses: urls}); err = store.Start(ctx)
//	p, err := tracer.NewPipeline(tracer.Options{
//		Sink:       store,
//		Dir:        filepath.Join(dataDir, "trace-outbox"),
//		Registerer: prometheus.DefaultRegisterer,
//		Logger:     logger,
//	})
//	p.Start()
//	// the data plane gets p as a tracer.Recorder; the console gets store as a tracer.Store
//	...
//	err = p.Close(shutdownCtx) // flushes, or spills to the outbox what it cannot flush
//	err = store.Close()
//
// Close the pipeline before the store. An outbox directory belongs to one
// pipeline at a time (it is locked); what Close leaves in it is replayed by
// the next pipeline opened on it.
//
// # Conventions
//
// Stores keep event times at microsecond precision and return them in UTC.
// List queries return events in ascending (Time, ID) order. TimeRange is
// [From, To). Consumption reports, per subscription, the latest of
// delivered, redelivered, filtered, nacked, acked and dead_lettered; at the
// same microsecond the later lifecycle step wins (acked and dead_lettered
// over nacked over delivered).
//
// # What was checked against what
//
// The SQLite store runs the contract suite for real. The Elasticsearch
// adapter runs it against esfake over HTTP, and its exact request bodies are
// pinned as golden files in testdata/. No real Elasticsearch was reachable
// while this was written: set TRACE_ES_URL to run the same suite against a
// cluster (TestElasticIntegration).
package tracer
