// Package durable keeps the sidecar's promise that an acknowledged message
// is never lost. Its Sender implements produce.Sender over a primary Pulsar
// cluster, an optional disaster-recovery (DR) cluster and the local spool
// (spool):
//
//	s, err := durable.New(durable.Options{
//		Primary:  durable.Cluster{Name: "primary", Sender: &produce.PulsarSender{Pool: primaryPool, Cluster: "primary"}},
//		DR:       &durable.Cluster{Name: "dr", Sender: &produce.PulsarSender{Pool: drPool, Cluster: "dr"}},
//		SpoolDir: filepath.Join(dataDir, "spool"),
//	})
//	proxy.New(proxy.Options{Sender: s, ReadyChecks: map[string]proxy.Check{"durability": s.Ready}, ...})
//	...
//	s.Close(ctx) // after the HTTP server, before the pools
//
// # One message
//
// Within the request deadline (the ctx deadline, else
// Options.RequestTimeout):
//
//  1. It goes to the primary if its circuit breaker lets it, else to the DR
//     cluster (answered status "failover", cluster "dr"). An attempt that
//     gets no acknowledgement within Options.AttemptTimeout counts as a
//     retriable failure: a dead broker does not fail sends, the client
//     holds them while it reconnects.
//  2. A retriable failure (see Retriable) is retried: at once on the other
//     cluster if its breaker lets it, else on the same cluster after an
//     exponential backoff with jitter. A permanent one (too large, topic
//     not allowed...) is answered with ErrRejected at once.
//  3. When no cluster will take it, or the deadline minus
//     Options.SpoolMargin is near, it is appended to the spool (fsync, group
//     commit) and answered "spooled", with its uid. A full spool or disk is
//     answered with ErrSpoolFull; nothing spooled before is harmed.
//
// A message is never answered twice and never answered "durable" before a
// broker or the spool holds it. It may be stored twice, always under the
// same uid (psc-uid): an attempt that timed out may still succeed later (a
// late ack, counted in psc_late_acks_total), and a replay interrupted by a
// crash repeats records acknowledged since the spool's last checkpoint.
// Consumers drop such duplicates by uid.
//
// # Circuit breakers
//
// Each cluster has one (see BreakerOptions). FailureThreshold retriable
// failures in a row open it; while open, a prober checks the cluster every
// ProbeInterval (by default SendProbe: a tiny message to HealthTopic through
// the cluster's own Sender). After MinOpen and RecoverProbes good probes in
// a row it goes half-open: up to HalfOpenTrials real messages (and further
// probes) test it, and that many successes close it; any failure opens it
// again, for twice as long when it flaps. This hysteresis is what moves
// traffic back to the primary without flapping.
//
// # Replay
//
// A replayer goroutine reads the spool in append order and sends each
// record to a healthy cluster (the primary preferred), acknowledging it in
// the spool only after the broker acknowledged it. It resumes after a
// restart from what the spool kept. Replayed messages carry the same uid,
// key, tags, event time and Pulsar properties (psc-* included) as the
// original send would have; a delayed message keeps its absolute due time.
//
// # Order
//
// Without faults, messages handed over by one goroutine keep their order
// per topic (the first attempt is handed over on the caller's goroutine).
// A retry, a failover or the spool can let a later message of the same
// topic overtake an earlier one; spooled messages are replayed in the order
// they were spooled. See docs/adr/050-durability.md.
package durable
