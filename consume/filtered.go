package consume

import "sync"

// filteredMemoryPerConsumer is how many filtered copies an engine remembers
// per Pulsar consumer, beyond twice its receiver queue: a copy comes back
// when its ack was lost with the connection (acks are grouped, up to 1000
// or 20 ms, see consumerOptions), and the broker sends back what the
// consumer had not acknowledged (its receiver queue, and the acks not yet
// sent or not yet read) before anything newer.
const filteredMemoryPerConsumer = 4096

// filteredSeen remembers the last copies an engine filtered out, so that a
// copy the broker sends again is acknowledged again but counted (Filtered)
// and traced once. It holds at most its capacity, the oldest forgotten
// first; a copy that returns after that, or to another replica, is counted
// again.
type filteredSeen struct {
	mu       sync.Mutex
	capacity int
	ring     []copyKey // the remembered keys, oldest at next once full
	next     int
	set      map[copyKey]struct{}
}

func newFilteredSeen(capacity int) *filteredSeen {
	return &filteredSeen{capacity: capacity, set: map[copyKey]struct{}{}}
}

// first reports whether k was not among the remembered copies, and
// remembers it.
func (f *filteredSeen) first(k copyKey) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.set[k]; ok {
		return false
	}
	if len(f.ring) < f.capacity {
		f.ring = append(f.ring, k)
	} else {
		delete(f.set, f.ring[f.next])
		f.ring[f.next] = k
		f.next = (f.next + 1) % f.capacity
	}
	f.set[k] = struct{}{}
	return true
}
