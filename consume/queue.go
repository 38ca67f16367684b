package consume

import (
	"container/heap"
	"strconv"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// copyKey identifies one physical message: a position on one cluster. The
// same uid can have two copies (primary and disaster-recovery cluster, or
// a spool replay), each with its own copyKey.
type copyKey struct {
	cluster   uint8
	partition int32
	ledger    int64
	entry     int64
	batch     int32
}

// String is "cluster:ledger:entry:partition:batch", the copy id kept in the
// delivery state.
func (k copyKey) String() string {
	return strconv.Itoa(int(k.cluster)) + ":" + wire.FormatIDParts(k.ledger, k.entry, k.partition, k.batch)
}

// deque is a FIFO of records that can also take records at its front (ring
// buffer, grows by doubling).
type deque struct {
	buf        []*record
	head, size int
}

func (d *deque) len() int { return d.size }

func (d *deque) grow() {
	if d.size < len(d.buf) {
		return
	}
	n := max(16, 2*len(d.buf))
	buf := make([]*record, n)
	for i := 0; i < d.size; i++ {
		buf[i] = d.buf[(d.head+i)%len(d.buf)]
	}
	d.buf, d.head = buf, 0
}

func (d *deque) pushBack(r *record) {
	d.grow()
	d.buf[(d.head+d.size)%len(d.buf)] = r
	d.size++
}

func (d *deque) pushFront(r *record) {
	d.grow()
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
	d.buf[d.head] = r
	d.size++
}

func (d *deque) popFront() *record {
	if d.size == 0 {
		return nil
	}
	r := d.buf[d.head]
	d.buf[d.head] = nil
	d.head = (d.head + 1) % len(d.buf)
	d.size--
	return r
}

// timerHeap orders records by due time; record.hidx is its index, -1 when
// out of the heap.
type timerHeap []*record

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *timerHeap) Push(x any) {
	r := x.(*record)
	r.hidx = len(*h)
	*h = append(*h, r)
}
func (h *timerHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.hidx = -1
	return r
}

func (h *timerHeap) schedule(r *record, due time.Time) {
	r.due = due
	if r.hidx >= 0 {
		heap.Fix(h, r.hidx)
		return
	}
	heap.Push(h, r)
}

func (h *timerHeap) unschedule(r *record) {
	if r.hidx >= 0 {
		heap.Remove(h, r.hidx)
	}
}
