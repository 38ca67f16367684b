// Package delay holds messages back until their due time. It offers the
// three modes of delayed delivery behind one facade, Engine:
//
//   - Levels (delayLevel): a fixed set of delays, one Pulsar topic each
//     (levels.go, forwarder.go). A message waits in its level's topic with
//     its real topic and due time as properties; a forwarder per level
//     reads the head on a Failover subscription, waits on a timer until it
//     is due, forwards it to the real topic and acknowledges the level
//     message once the broker has acknowledged the forward. Every message
//     in a level waits equally long, so publish order is due order and the
//     forwarder never holds more than its receiver queue and a few forwards
//     in flight: memory does not depend on the backlog. Level messages
//     cannot be removed from Pulsar; cancel leaves a mark in Redis that the
//     forwarder reads before forwarding (cancels.go), and a small record per
//     waiting level message lets Get and Cancel by uid find it and its
//     topic (levelrecord.go). Start attaches the forwarders in the
//     background, retrying while the broker is down; Ready says which wait.
//     See docs/adr/040-delay-levels.md.
//   - Wheel (deliverAfter/deliverAt, the default with Redis): any delay with
//     one-second precision, never early.
//   - Native (deliverAfter/deliverAt per configuration): Pulsar's own
//     deliverAt, honoured only by Shared and Key_Shared subscriptions.
//
// The wheel mode has three parts, each usable alone:
//
//   - Wheel: a hierarchical timing wheel in memory, driven only by
//     Advance(now). It never fires a timer before its due time (rounded up
//     to the tick) and, driven at every tick boundary, at most one tick
//     after. A pending timer costs 16 bytes plus slice slack (about 17-20 B
//     measured), and no heap object of its own.
//   - Index: the durable store in Redis and the source of truth. Messages,
//     cancel by uid or by (topic, key), reschedule, inspection, LoadRange for
//     refilling a wheel on start, and an atomic Claim (Lua) so that of
//     several replicas sharing one Redis exactly one forwards a message; a
//     claim that is not acked within its lease makes the message due again.
//   - Scheduler: the glue. It loads the wheel from the index, claims what
//     the wheel hands out, calls the sidecar's ForwardFunc and acks. A
//     periodic sweep asks Redis for due messages no local wheel holds
//     (scheduled by another replica, expired leases).
//
// Due messages of the wheel and the levels are re-published to their real
// topic with their uid, key, tags, properties and event time (plus
// psc-delay-due), so every subscription type sees them. Delivery is at
// least once in both: a forward whose acknowledgement is lost (a Redis ack,
// a level-message ack within the client's grouping window, a Failover
// switch mid-forward) is repeated with the same uid; consumers drop the
// duplicate by uid.
//
// NextRetry (retryplan.go) reads a message's retry plan ("1s,5s,30s,2m")
// for the consume API's nack with retry.
//
// The engine publishes level messages and native delays through a
// Publisher (the sidecar's produce.Pool), forwards due messages through a
// DuePublisher (the sidecar's durable sender: retry, DR failover, spool),
// and records scheduled, fired and cancelled events through a
// tracer.Recorder.
// proxy imports delay, so the few property names both use are repeated in
// props.go and checked against proxy's by a test.
package delay
