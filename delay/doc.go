// Package delay holds messages back until their due time: the "wheel" mode
// of delayed delivery (arbitrary delays, one-second precision).
//
// Three parts, each usable alone:
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
// Delivery is at least once: a forward whose ack to Redis is lost is
// repeated after the lease; consumers drop the duplicate by uid.
package delay
