// Package consume is the HTTP consume engine: subscriptions with tag
// filters, long-poll receive, ack and nack, ack timeouts, dead letters,
// consumption from the disaster-recovery cluster and duplicate dropping,
// served statelessly by any number of sidecar replicas.
//
// # Model
//
// The cursor lives in the Pulsar subscription; everything else a replica
// needs to serve any request lives in Redis:
//
//   - Registrations (Registry): one hash per subscription and set indexes,
//     cached per replica for Options.State.ConfigRefresh.
//   - Delivery state (state.go): one short hash field per (subscription,
//     message uid) with a lease ("delivery n runs until T"), an ack, or a
//     dead-letter mark, in per-subscription hashes of DedupWindow-wide time
//     buckets, so it is kept one to two windows after its last change. Lua
//     scripts change it a batch at a time.
//   - Per-tag backlog (backlog.go): a scan of the subscription's
//     unacknowledged entries through the admin API, less what the delivery
//     state says is acknowledged, beside what replicas hold per tag.
//
// Each replica consumes a subscription it serves through its own Shared
// (or Key_Shared) Pulsar consumer per cluster, with batch-index
// acknowledgement and a small receiver queue. A pump filters every message
// with the subscription's tagfilter expression: a message that does not
// match is acknowledged at once (inside a batch, by batch index: producer
// batching stays on) and counted; a matching one waits for a receive.
// Receiving leases it in Redis and hands it out with a signed ackId that
// names the message (cluster, partition, ledger, entry, batch index and
// size), the delivery number, the replica and the subscription.
//
// An ack to any replica is recorded in Redis, then applied on the broker by
// the replica whose consumer holds the message (itself, or the one the
// ackId names, told over Redis pub/sub). The Go client cannot acknowledge
// one message of a batch through a consumer that did not receive it (a
// bare MessageID acks the whole entry), so acks go through the holder; if
// it is gone, its consumer's messages go back to the broker and whichever
// replica receives the message next finds the ack in Redis and
// acknowledges instead of delivering. Nacks work the same way and set when
// the lease ends.
//
// When a lease ends (ack timeout or nack delay), the holder hands the
// message out again if it has receivers, or gives it back to the broker
// (NackID) so a replica with receivers gets it. A copy the broker sends to
// a replica while another delivery's lease runs (another message of its
// batch was handed back) is held until the lease ends, never handed out
// twice. The delivery count is the one in Redis, per message (Pulsar's
// redelivery count is per batch entry). A message leased maxDeliveries
// times goes to the dead-letter topic with psc-dead-letter-reason and the
// original message id, topic, cluster and subscription; that topic is
// consumed over the same API. A second copy of a uid (disaster-recovery
// cluster, spool replay) is dropped while the first is leased or after it
// was acknowledged, within the dedup window; a subscription registered with
// dedupe "key" also drops a copy of one (psc-app, psc-idempotency-key) under
// another uid (its delivery state is the key's). The answer carries app,
// idempotencyKey and duplicateRisk so a consumer can deduplicate itself.
// docs/adr/060-consume.md has the reasoning and what was rejected.
//
// A cursor reset (Service.ResetCursor, reset.go; the console's "replay
// from a time") is an explicit replay: it drops what every replica holds
// of the subscription, moves the broker's cursor, clears the delivery
// state (so acknowledged and dead-lettered messages are delivered again,
// as new) and makes ackIds handed out before it stale.
//
// # Wiring
//
//	svc, err := consume.New(consume.Options{
//		Redis:    rdb,
//		Clusters: []consume.Cluster{{Name: "primary", Client: primary}, {Name: "dr", Client: dr}},
//		Secret:   secret, // the same on every replica, at least 16 bytes
//		Node:     node,
//		Recorder: pipeline, Registerer: registry, Logger: logger,
//		Backlog:  consume.AdminBacklog(admin),
//	})
//	err = svc.Start(ctx)
//	svc.Register(v1, consume.HTTPOptions{ // v1: the data plane's /v1 group, after authentication
//		AppFromContext:    proxy.AppFromContext,
//		MayConsumeContext: proxy.MayConsume,
//	})
//	...
//	err = svc.Close(ctx) // after the HTTP server stopped; before the Pulsar clients close
//
// # HTTP API
//
// See Register for the routes and the request and response types
// (SubscriptionSpec, Subscription, ReceiveRequest, ReceiveResponse,
// Message, AckRequest, AckResponse, NackRequest, NackResponse, Stats).
// Errors are {"error":{"code","message"}} (plus "position" for a bad tag
// filter); the codes and their statuses are listed with the Code*
// constants in errors.go.
//
// # Limits
//
// Per replica and subscription at most MaxReady messages wait for a
// receive and MaxHeld are held in all; a replica that gets no receive for
// ActiveWindow stops reading and hands back what waits, and closes its
// consumers after IdleTimeout (until then up to ReceiverQueueSize messages
// stay in its client's queue). At most MaxSubscriptions are consumed at
// once per replica.
package consume
