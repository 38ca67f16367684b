// Package consoleapi is the console REST API of pulsar-sidecar, mounted
// under /console/v1: what is in message M, who produced it, was it consumed
// by subscription S, by whom and when; search over the lifecycle trace; the
// registry of apps, topics and subscriptions; backlog and other stats.
// openapi.yaml (served at /console/v1/openapi.yaml) describes every
// endpoint; a test keeps it and the routes in step.
//
// # Wiring
//
//	admin, err := consoleapi.NewPulsarAdmin(&config.Config{WebServiceURL: adminURL}) // pulsaradmin's config
//	defer admin.Close()
//	reg, err := consoleapi.NewStaticRegistry(consoleapi.RegistryConfig{Apps: ..., Topics: ..., Subscriptions: ...})
//	api, err := consoleapi.New(consoleapi.Options{
//		Store:      store,  // the tracer.Store the pipeline writes to
//		Broker:     admin,  // optional: content, cursors, backlog
//		Registry:   reg,    // optional
//		Authorizer: authz,  // the app's bearer-token apps with the console permission
//		// Open: true,      // instead of Authorizer: the embedded dev mode on loopback
//	})
//	api.Register(engine.Group(consoleapi.Prefix)) // or serve api.Handler()
//	promRegistry.MustRegister(api.Collector())    // psc_subscription_backlog_* for the alert rules
//
// Without an Authorizer and without Open every request is refused (401).
// ClusterBrokers adds the brokers of other clusters (e.g. disaster
// recovery), by the cluster name trace events carry. Providers plug in the
// stats other components own (per-tag backlog, delay and spool depth,
// cluster health); a missing one is answered as null with a note.
// OnError sees every error answer's status and code (the sidecar counts
// them in psc_http_errors_total).
//
// The sidecar (app/console.go) builds the console after its other
// components: Registry is a RedisRegistry (registry_redis.go: apps, tokens
// and topics in Redis, bootstrapped from the configured apps, plus the
// subscriptions registered through the consume API), which also serves
// the registry writes and the audit log; the providers are the
// consume engine, the delay engine, the spool and the circuit breakers,
// and Collector() is on its Prometheus registry.
//
// # Where the answers come from
//
//   - Metadata and timeline: the trace store (tracer.Store). A message's
//     broker id and cluster are those of its latest persisted, failed_over,
//     replayed or fired event.
//   - Content: the broker, GET .../ledger/{L}/entry/{E} at that id, split
//     by wire.DecodeEntry when the entry is a batch (pulsaradmin v0.19.0's
//     GetMessagesByID shares one properties map across a batch, which
//     would show every message of a batch with the last one's psc-uid).
//     Payloads are UTF-8 when valid, else base64, cut at a size cap. A
//     broker message that carries another psc-uid is not shown.
//   - "Was it consumed": per subscription, the trace's latest consumption
//     event when it is final (acked, dead_lettered, filtered); else the
//     subscription's cursor from the broker's internal stats (mark-delete
//     position and individually deleted ranges) when it is past the
//     message; else a delivery in the trace; else the registered tag
//     filter; else not_yet. Each row says which source decided. A batch
//     entry acknowledged only in part is not past the cursor.
//   - Search: tracer.Store.Search. Cursors handed out carry a fingerprint
//     of their query, so a cursor reused with other criteria is refused.
//
// # What was checked against what
//
// The tests run the real pulsar-client-go and pulsaradmin against
// minipulsar and the real SQLite store over loopback HTTP. No real Pulsar
// was reachable: the shapes of internal stats (cursor positions, the
// "[(l:e..l:e],...]" ranges) and of the ledger/entry answer (X-Pulsar-*
// headers, batch layout) follow Pulsar's documentation and minipulsar,
// which its conformance suite checks against pulsaradmin.
package consoleapi
