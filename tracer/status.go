package tracer

// Status is where a message is in its life, derived from its events. The
// string values are stable: the console shows them and search filters on
// them.
type Status string

// The statuses, in lifecycle order (see StatusOf).
const (
	StatusAccepted     Status = "accepted"      // taken over HTTP, not yet stored anywhere (or still retrying)
	StatusSpooled      Status = "spooled"       // on the local spool, waiting for a cluster
	StatusPersisted    Status = "persisted"     // a broker holds it for its consumers
	StatusScheduled    Status = "scheduled"     // waiting for its delivery time (wheel, level or native)
	StatusCancelled    Status = "cancelled"     // a delayed message cancelled before it fired
	StatusDelivered    Status = "delivered"     // handed to an HTTP consumer, not acknowledged (yet)
	StatusConsumed     Status = "consumed"      // acknowledged by a consumer
	StatusDeadLettered Status = "dead_lettered" // moved to a dead-letter topic
	// StatusScheduleLost is never derived from events alone: the console
	// answers it for a scheduled message that the delay engine no longer
	// holds although it never fired nor was cancelled (a wheel lost in a
	// restart without Redis persistence).
	StatusScheduleLost Status = "schedule_lost"
)

// Statuses lists every status.
var Statuses = []Status{
	StatusAccepted, StatusSpooled, StatusPersisted, StatusScheduled, StatusCancelled,
	StatusDelivered, StatusConsumed, StatusDeadLettered, StatusScheduleLost,
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, k := range Statuses {
		if s == k {
			return true
		}
	}
	return false
}

// StatusRank is the rank of an event type in the lifecycle and the status
// it gives its message: a message's status is that of its highest-ranked
// event, whatever the order the events arrived or were timed in. The ranks
// encode the lifecycle:
//
//	1 accepted, retried           -> accepted
//	2 spooled                     -> spooled
//	3 persisted, failed_over,     -> persisted
//	  replayed, filtered
//	4 scheduled                   -> scheduled (beats persisted: the produce
//	                                 path records persisted for a delayed
//	                                 message too)
//	5 fired                       -> persisted (the delay is over)
//	6 cancelled                   -> cancelled
//	7 delivered, redelivered,     -> delivered
//	  nacked
//	8 acked                       -> consumed
//	9 dead_lettered               -> dead_lettered
//
// A rank is a number so that stores can aggregate it (MAX per uid) without
// reading every event; 0 is an unknown type.
func StatusRank(t Type) (int, Status) {
	switch t {
	case Accepted, Retried:
		return 1, StatusAccepted
	case Spooled:
		return 2, StatusSpooled
	case Persisted, FailedOver, Replayed, Filtered:
		return 3, StatusPersisted
	case Scheduled:
		return 4, StatusScheduled
	case Fired:
		return 5, StatusPersisted
	case Cancelled:
		return 6, StatusCancelled
	case Delivered, Redelivered, Nacked:
		return 7, StatusDelivered
	case Acked:
		return 8, StatusConsumed
	case DeadLettered:
		return 9, StatusDeadLettered
	}
	return 0, ""
}

// maxRank is the highest rank StatusRank gives.
const maxRank = 9

// statusOfRank is the status of a rank.
func statusOfRank(rank int) Status {
	for _, t := range Types {
		if r, s := StatusRank(t); r == rank {
			return s
		}
	}
	return ""
}

// StatusOf is the status of a message with these events (any order): the
// status of its highest-ranked event (StatusRank), "" without events.
func StatusOf(evs []Event) Status {
	best := 0
	for i := range evs {
		if r, _ := StatusRank(evs[i].Type); r > best {
			best = r
		}
	}
	return statusOfRank(best)
}

// TypesOfStatus are the event types that give status s; a message has
// status s when its highest-ranked event is one of them.
func TypesOfStatus(s Status) []Type {
	var out []Type
	for _, t := range Types {
		if _, ts := StatusRank(t); ts == s {
			out = append(out, t)
		}
	}
	return out
}
