package minipulsar

import (
	"container/heap"
	"math/bits"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// dispatchBatch bounds how many entries one dispatch round takes under the
// topic lock.
const dispatchBatch = 256

// maxKeySharedReplay bounds the entries a Key_Shared subscription sets aside
// while their key's consumer has no permits.
const maxKeySharedReplay = 10000

// subscription is a cursor over a topic plus the consumers attached to it.
// Every field is guarded by the topic's mutex.
type subscription struct {
	t       *topic
	name    string
	durable bool
	typ     pb.CommandSubscribe_SubType

	consumers []*consumer
	active    *consumer // Exclusive and Failover
	rr        int       // Shared round robin
	ring      hashRing  // Key_Shared auto-split consumers

	// cursor: every entry below ackedUpTo is acknowledged; acked holds
	// individually acknowledged entries at or above it; partial holds batch
	// entries with some messages acknowledged (bit set = still unacked).
	ackedUpTo uint64
	acked     map[uint64]struct{}
	partial   map[uint64][]int64

	readPos      uint64   // next entry never dispatched since the cursor was set
	replay       []uint64 // entries to dispatch again, sorted, unique
	pending      map[uint64]*consumer
	redeliveries map[uint64]uint32

	delayed   delayHeap
	delayStop func() bool
	delayAt   int64

	wake chan struct{}
	quit chan struct{} // non-nil while a dispatcher runs
	// sendMu is held by the dispatcher from picking entries to writing
	// them, so a seek (which takes it before t.mu) never lets a message
	// from the old position follow its reply. Order: sendMu, then t.mu.
	sendMu sync.Mutex

	// keepWhenEmpty keeps a non-durable subscription while its consumers
	// reconnect after a seek.
	keepWhenEmpty bool

	msgOut, bytesOut uint64
}

func newSubscription(t *topic, name string, durable bool, typ pb.CommandSubscribe_SubType) *subscription {
	return &subscription{
		t:            t,
		name:         name,
		durable:      durable,
		typ:          typ,
		acked:        map[uint64]struct{}{},
		partial:      map[uint64][]int64{},
		pending:      map[uint64]*consumer{},
		redeliveries: map[uint64]uint32{},
		wake:         make(chan struct{}, 1),
	}
}

// delivery is one MESSAGE to send, decided under the topic lock and written
// after it is released.
type delivery struct {
	c           *consumer
	id          uint64
	data        []byte
	redelivered uint32
	ackSet      []int64
}

func (sub *subscription) notify() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// startDispatcher runs the dispatch goroutine while consumers are attached;
// caller holds t.mu.
func (sub *subscription) startDispatcher() {
	if sub.quit != nil {
		return
	}
	quit := make(chan struct{})
	sub.quit = quit
	sub.t.s.goFunc(func() { sub.dispatchLoop(quit) })
	sub.notify()
}

func (sub *subscription) stopDispatcher() {
	if sub.quit != nil {
		close(sub.quit)
		sub.quit = nil
	}
}

func (sub *subscription) stopTimers() {
	if sub.delayStop != nil {
		sub.delayStop()
		sub.delayStop = nil
		sub.delayAt = 0
	}
}

func (sub *subscription) dispatchLoop(quit chan struct{}) {
	var batch []delivery
	for {
		select {
		case <-sub.wake:
		case <-quit:
			return
		}
		for {
			sub.sendMu.Lock()
			sub.t.mu.Lock()
			batch = sub.collect(batch[:0], dispatchBatch)
			sub.t.evictLocked()
			sub.t.mu.Unlock()
			if len(batch) == 0 {
				sub.sendMu.Unlock()
				break
			}
			for _, d := range batch {
				d.c.c.send(&pb.BaseCommand{Type: pb.BaseCommand_MESSAGE.Enum(), Message: &pb.CommandMessage{
					ConsumerId:      proto.Uint64(d.c.id),
					MessageId:       &pb.MessageIdData{LedgerId: proto.Uint64(sub.t.ledger), EntryId: proto.Uint64(d.id)},
					RedeliveryCount: proto.Uint32(d.redelivered),
					AckSet:          d.ackSet,
				}}, d.data)
			}
			sub.sendMu.Unlock()
			clear(batch)
		}
	}
}

func (sub *subscription) isAcked(id uint64) bool {
	if id < sub.ackedUpTo {
		return true
	}
	_, ok := sub.acked[id]
	return ok
}

// sharedDispatch tells whether the subscription dispatches like Pulsar's
// multiple-consumer dispatchers (Shared, Key_Shared): those hold delayed
// messages back and count redeliveries.
func (sub *subscription) sharedDispatch() bool {
	return sub.typ == pb.CommandSubscribe_Shared || sub.typ == pb.CommandSubscribe_Key_Shared
}

// collect picks the next entries to dispatch; caller holds t.mu.
func (sub *subscription) collect(out []delivery, limit int) []delivery {
	if len(sub.consumers) == 0 {
		return out
	}
	t := sub.t
	keyShared := sub.typ == pb.CommandSubscribe_Key_Shared
	for i := 0; i < len(sub.replay) && len(out) < limit; {
		id := sub.replay[i]
		e := t.entryAt(id)
		if e == nil || e.void() || sub.isAcked(id) || sub.pending[id] != nil {
			sub.replay = append(sub.replay[:i], sub.replay[i+1:]...)
			continue
		}
		c := sub.pick(e)
		if c == nil {
			if keyShared && sub.anyPermits() {
				i++
				continue
			}
			return out
		}
		sub.replay = append(sub.replay[:i], sub.replay[i+1:]...)
		if data, ok := t.entryBytes(id, e); ok {
			out = sub.deliver(out, c, id, e, data)
		}
	}
	if len(sub.replay) > 0 && !keyShared {
		return out
	}
	now := t.s.clock.Now().UnixMilli()
	for sub.readPos < t.dispatchable && len(out) < limit {
		id := sub.readPos
		if id < t.first {
			sub.readPos = t.first
			continue
		}
		e := t.entryAt(id)
		if e == nil || e.void() || sub.isAcked(id) || sub.pending[id] != nil {
			sub.readPos++
			continue
		}
		if at := t.deliverAt(id, e); at > now && sub.sharedDispatch() {
			sub.pushDelayed(id, at, now)
			sub.readPos++
			continue
		}
		c := sub.pick(e)
		if c == nil {
			if keyShared && sub.anyPermits() && len(sub.replay) < maxKeySharedReplay {
				sub.addReplay(id)
				sub.readPos++
				continue
			}
			return out
		}
		sub.readPos++
		if data, ok := t.entryBytes(id, e); ok {
			out = sub.deliver(out, c, id, e, data)
		}
	}
	return out
}

func (sub *subscription) deliver(out []delivery, c *consumer, id uint64, e *entry, data []byte) []delivery {
	c.permits -= int64(e.numMsgs)
	c.unacked++
	c.msgOut += uint64(e.numMsgs)
	sub.pending[id] = c
	sub.msgOut += uint64(e.numMsgs)
	sub.bytesOut += uint64(e.size)
	return append(out, delivery{c: c, id: id, data: data, redelivered: sub.redeliveries[id], ackSet: sub.partial[id]})
}

func (sub *subscription) anyPermits() bool {
	for _, c := range sub.consumers {
		if c.permits > 0 {
			return true
		}
	}
	return false
}

// pick chooses the consumer for an entry, or nil when it must wait.
func (sub *subscription) pick(e *entry) *consumer {
	switch sub.typ {
	case pb.CommandSubscribe_Shared:
		n := len(sub.consumers)
		for k := 0; k < n; k++ {
			c := sub.consumers[(sub.rr+k)%n]
			if c.permits > 0 {
				sub.rr = (sub.rr + k + 1) % n
				return c
			}
		}
		return nil
	case pb.CommandSubscribe_Key_Shared:
		c := sub.keyOwner(e)
		if c != nil && c.permits > 0 {
			return c
		}
		return nil
	default:
		if c := sub.active; c != nil && c.permits > 0 {
			return c
		}
		return nil
	}
}

// keyOwner maps an entry's key to a consumer: sticky consumers by the hash
// ranges they asked for, auto-split ones by the hash ring (keyshared.go).
func (sub *subscription) keyOwner(e *entry) *consumer {
	slot := int32(-1)
	for _, c := range sub.consumers {
		if len(c.ranges) == 0 {
			continue
		}
		if slot < 0 {
			slot = int32(e.rangeHash)
		}
		for _, r := range c.ranges {
			if slot >= r.GetStart() && slot <= r.GetEnd() {
				return c
			}
		}
	}
	return sub.ring.owner(e.keyHash)
}

func (sub *subscription) addReplay(id uint64) {
	i := sort.Search(len(sub.replay), func(i int) bool { return sub.replay[i] >= id })
	if i < len(sub.replay) && sub.replay[i] == id {
		return
	}
	sub.replay = append(sub.replay, 0)
	copy(sub.replay[i+1:], sub.replay[i:])
	sub.replay[i] = id
}

// --- delayed delivery ---

type delayed struct {
	at int64
	id uint64
}

type delayHeap []delayed

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	if h[i].at == h[j].at {
		return h[i].id < h[j].id
	}
	return h[i].at < h[j].at
}
func (h delayHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)   { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (sub *subscription) pushDelayed(id uint64, at, now int64) {
	heap.Push(&sub.delayed, delayed{at: at, id: id})
	sub.armDelayTimer(now)
}

// armDelayTimer makes sure a timer fires when the earliest delayed entry is due.
func (sub *subscription) armDelayTimer(now int64) {
	if len(sub.delayed) == 0 {
		return
	}
	at := sub.delayed[0].at
	if sub.delayStop != nil && sub.delayAt <= at {
		return
	}
	if sub.delayStop != nil {
		sub.delayStop()
	}
	sub.delayAt = at
	sub.delayStop = sub.t.s.clock.AfterFunc(time.Duration(at-now)*time.Millisecond, sub.releaseDue)
}

// releaseDue moves due delayed entries to the replay set.
func (sub *subscription) releaseDue() {
	t := sub.t
	t.mu.Lock()
	defer t.mu.Unlock()
	sub.delayStop, sub.delayAt = nil, 0
	now := t.s.clock.Now().UnixMilli()
	for len(sub.delayed) > 0 && sub.delayed[0].at <= now {
		d := heap.Pop(&sub.delayed).(delayed)
		if !sub.isAcked(d.id) {
			sub.addReplay(d.id)
		}
	}
	sub.armDelayTimer(now)
	sub.notify()
}

// --- acknowledgement ---

// fullAckSet is the batch ack set with every message of n unacknowledged.
func fullAckSet(n int32) []int64 {
	words := make([]int64, (n+63)/64)
	for i := int32(0); i < n; i++ {
		words[i/64] |= 1 << (i % 64)
	}
	return words
}

// ackIndividual acknowledges one entry, or some messages of a batch entry
// when ackSet is given (bit set = still unacknowledged).
func (sub *subscription) ackIndividual(id uint64, ackSet []int64) {
	if sub.isAcked(id) {
		return
	}
	e := sub.t.entryAt(id)
	if e == nil {
		return
	}
	if len(ackSet) > 0 && e.numMsgs > 1 {
		cur := sub.partial[id]
		if cur == nil {
			cur = fullAckSet(e.numMsgs)
		}
		next := make([]int64, len(cur))
		left := 0
		for i := range cur {
			w := cur[i]
			if i < len(ackSet) {
				w &= ackSet[i]
			} else {
				w = 0
			}
			next[i] = w
			left += bits.OnesCount64(uint64(w))
		}
		if left > 0 {
			sub.partial[id] = next
			return
		}
	}
	sub.acked[id] = struct{}{}
	sub.forget(id)
	sub.advance()
}

// ackCumulative acknowledges every entry up to and including id (up to id,
// and some of id's messages, when ackSet is given).
func (sub *subscription) ackCumulative(id uint64, ackSet []int64) {
	upTo := id + 1
	if len(ackSet) > 0 {
		upTo = id
	}
	if upTo > sub.t.next {
		upTo = sub.t.next
	}
	if upTo > sub.ackedUpTo {
		for pid := range sub.pending {
			if pid < upTo {
				sub.forget(pid)
			}
		}
		for aid := range sub.acked {
			if aid < upTo {
				delete(sub.acked, aid)
			}
		}
		for pid := range sub.partial {
			if pid < upTo {
				delete(sub.partial, pid)
			}
		}
		for rid := range sub.redeliveries {
			if rid < upTo {
				delete(sub.redeliveries, rid)
			}
		}
		sub.ackedUpTo = upTo
	}
	if len(ackSet) > 0 {
		sub.ackIndividual(id, ackSet)
	}
	sub.advance()
}

// forget drops an acknowledged entry from dispatch bookkeeping.
func (sub *subscription) forget(id uint64) {
	if c, ok := sub.pending[id]; ok {
		c.unacked--
		delete(sub.pending, id)
	}
	delete(sub.partial, id)
	delete(sub.redeliveries, id)
}

// advance moves ackedUpTo over acknowledged and void entries.
func (sub *subscription) advance() {
	t := sub.t
	for sub.ackedUpTo < t.next {
		if _, ok := sub.acked[sub.ackedUpTo]; ok {
			delete(sub.acked, sub.ackedUpTo)
		} else if e := t.entryAt(sub.ackedUpTo); e == nil || !e.void() {
			break
		}
		sub.ackedUpTo++
	}
	if i := sort.Search(len(sub.replay), func(i int) bool { return sub.replay[i] >= sub.ackedUpTo }); i > 0 {
		sub.replay = append(sub.replay[:0], sub.replay[i:]...)
	}
	if sub.readPos < sub.ackedUpTo {
		sub.readPos = sub.ackedUpTo
	}
}

// redeliver puts entries pending on c back for dispatch; all of c's pending
// entries when ids is empty. Redelivery counts go up by one.
func (sub *subscription) redeliver(c *consumer, ids []uint64) {
	if len(ids) == 0 {
		for id, pc := range sub.pending {
			if pc == c {
				ids = append(ids, id)
			}
		}
	}
	for _, id := range ids {
		if pc, ok := sub.pending[id]; !ok || pc != c {
			continue
		}
		delete(sub.pending, id)
		c.unacked--
		if sub.sharedDispatch() {
			// Only these track redelivery counts (and so dead-letter topics).
			sub.redeliveries[id]++
		}
		sub.addReplay(id)
	}
	sub.notify()
}

// releasePending returns every entry pending on c to the replay set without
// counting a redelivery (the consumer went away).
func (sub *subscription) releasePending(c *consumer) {
	for id, pc := range sub.pending {
		if pc == c {
			delete(sub.pending, id)
			sub.addReplay(id)
		}
	}
	c.unacked = 0
}

// resetCursor moves the cursor so that id is the next entry to deliver:
// everything before it is acknowledged, nothing after it is.
func (sub *subscription) resetCursor(id uint64) {
	if id > sub.t.next {
		id = sub.t.next
	}
	if id < sub.t.first {
		id = sub.t.first
	}
	sub.ackedUpTo = id
	sub.readPos = id
	sub.acked = map[uint64]struct{}{}
	sub.partial = map[uint64][]int64{}
	sub.pending = map[uint64]*consumer{}
	sub.redeliveries = map[uint64]uint32{}
	sub.replay = nil
	sub.delayed = nil
	sub.stopTimers()
	for _, c := range sub.consumers {
		c.unacked = 0
	}
	sub.persist()
	sub.notify()
}

// backlog counts unacknowledged messages (not entries) and, of those, the
// ones held back by delayed delivery.
func (sub *subscription) backlog() (msgs, delayedMsgs int64) {
	t := sub.t
	now := t.s.clock.Now().UnixMilli()
	start := max(sub.ackedUpTo, t.first)
	for id := start; id < t.visible; id++ {
		if _, ok := sub.acked[id]; ok {
			continue
		}
		e := &t.entries[id-t.first]
		if e.void() {
			continue
		}
		n := int64(e.numMsgs)
		if ps, ok := sub.partial[id]; ok {
			n = 0
			for _, w := range ps {
				n += int64(bits.OnesCount64(uint64(w)))
			}
		}
		msgs += n
		if t.deliverAt(id, e) > now && sub.sharedDispatch() {
			delayedMsgs += n
		}
	}
	return msgs, delayedMsgs
}

// --- persistence of durable cursors ---

// cursorState is what a durable subscription persists.
type cursorState struct {
	Type      int32              `json:"type"`
	AckedUpTo uint64             `json:"ackedUpTo"`
	Acked     []uint64           `json:"acked,omitempty"`
	Partial   map[uint64][]int64 `json:"partial,omitempty"`
}

func (sub *subscription) state() cursorState {
	cs := cursorState{Type: int32(sub.typ), AckedUpTo: sub.ackedUpTo}
	for id := range sub.acked {
		cs.Acked = append(cs.Acked, id)
	}
	sort.Slice(cs.Acked, func(i, j int) bool { return cs.Acked[i] < cs.Acked[j] })
	if len(sub.partial) > 0 {
		cs.Partial = make(map[uint64][]int64, len(sub.partial))
		for id, s := range sub.partial {
			cs.Partial[id] = s
		}
	}
	return cs
}

func (sub *subscription) restore(cs cursorState) {
	sub.ackedUpTo = cs.AckedUpTo
	sub.readPos = cs.AckedUpTo
	for _, id := range cs.Acked {
		sub.acked[id] = struct{}{}
	}
	for id, s := range cs.Partial {
		sub.partial[id] = s
	}
}

// persist records a durable cursor; caller holds t.mu.
func (sub *subscription) persist() {
	if sub.durable {
		sub.t.s.store.putCursor(sub.t.full, sub.name, sub.state())
	}
}
