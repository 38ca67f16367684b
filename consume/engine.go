package consume

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/group"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// recState is where a record is in its life on this replica.
type recState uint8

const (
	stReady         recState = iota // waiting in the ready queue for a receive
	stLeasing                       // taken by a receive, asking Redis for the lease
	stInflight                      // handed out; due is the end of the lease
	stHeld                          // leased by another delivery; due is when to look again
	stDeadLettering                 // being written to the dead-letter topic
	stGone                          // acknowledged, handed back or dropped
)

// record is one matching message this replica's consumer received and has
// not yet acknowledged or handed back to the broker.
type record struct {
	key     copyKey
	stateID string
	uid     string
	step    int    // psc-retry-step; 0: none
	keyHash string // keyHashOf, on a DedupeKey subscription; "" otherwise
	msg     pulsar.Message
	cc      *clusterConsumer
	tags    []string
	state   recState
	n       int    // delivery number while in flight
	reason  string // why it is dead-lettered, when not for maxDeliveries
	due     time.Time
	hidx    int
}

// clusterConsumer is one Pulsar consumer of the subscription on one cluster.
type clusterConsumer struct {
	idx     int
	cluster Cluster
	cons    atomic.Pointer[pulsarConsumer]
}

// pulsarConsumer wraps the client's consumer so it can sit in an atomic.Pointer.
type pulsarConsumer struct{ pulsar.Consumer }

func (cc *clusterConsumer) ack(id pulsar.MessageID) {
	if c := cc.cons.Load(); c != nil {
		_ = c.AckID(id) // grouped and asynchronous; a lost ack is redelivered and dropped by the delivery state
	}
}

func (cc *clusterConsumer) nack(id pulsar.MessageID) {
	if c := cc.cons.Load(); c != nil {
		c.NackID(id)
	}
}

// holdSlack is added to a foreign lease's end before looking again, so the
// lease holder's own timer goes first.
const holdSlack = 50 * time.Millisecond

// engine consumes one subscription on this replica: one Pulsar consumer per
// cluster (times Options.Consumers.PerCluster), a pump per consumer that
// filters and queues, the records of matching messages, and a timer for
// leases. It is created on the first receive and closed when idle.
type engine struct {
	svc     *Service
	ref     SubscriptionRef
	path    string
	binding uint64
	cfg     atomic.Pointer[Subscription]
	stats   *subStats
	log     *slog.Logger
	// filtered remembers the copies filtered out lately, so that one the
	// broker sends again is counted once.
	filtered *filteredSeen

	mu        sync.Mutex
	records   map[copyKey]*record
	ready     deque
	timers    timerHeap
	timerAt   time.Time
	timerStop func() bool
	waiters   int
	// lastActive is the (real) time of the last receive. While receives
	// come (Options.Consumers.ActiveWindow), the pumps read and expired messages are
	// handed out again here; otherwise the pumps stop and what this replica
	// holds goes back to the broker, for replicas that have receivers.
	lastActive time.Time
	notify     chan struct{} // closed (and replaced) when the ready queue grows
	space      chan struct{} // closed (and replaced) when records leave and a pump waits
	spaceWait  int           // pumps waiting on space
	closed     bool

	consumers []*clusterConsumer
	tick      chan struct{}
	dlqJobs   chan *record
	quit      chan struct{}
	bg        group.Group // the pumps, timer and dead-letter loops
}

func newEngine(svc *Service, cfg *Subscription) *engine {
	ref := cfg.Ref()
	e := &engine{
		svc: svc, ref: ref, path: ref.Path(), binding: ref.binding(),
		stats:   newSubStats(svc.opts.Stats.MaxTags),
		log:     svc.log.With("subscription", ref.Path()),
		records: map[copyKey]*record{},
		notify:  make(chan struct{}), space: make(chan struct{}),
		tick: make(chan struct{}, 1), dlqJobs: make(chan *record, svc.opts.Consumers.MaxHeld),
		quit: make(chan struct{}),
	}
	e.cfg.Store(cfg)
	e.lastActive = time.Now()
	for i, c := range svc.opts.Clusters {
		for range svc.opts.Consumers.PerCluster {
			e.consumers = append(e.consumers, &clusterConsumer{idx: i, cluster: c})
		}
	}
	e.filtered = newFilteredSeen(len(e.consumers) * (2*svc.opts.Consumers.ReceiverQueueSize + filteredMemoryPerConsumer))
	return e
}

func (e *engine) start() {
	for _, cc := range e.consumers {
		e.goFunc(func() { e.runConsumer(cc) })
	}
	e.goFunc(e.timerLoop)
	e.goFunc(e.deadLetterLoop)
}

func (e *engine) goFunc(f func()) { e.bg.Go(f) }

// close stops the pumps and closes the consumers: the broker redelivers
// whatever they held to other consumers. Idempotent.
func (e *engine) close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = e.bg.Wait(context.Background())
		return
	}
	e.closed = true
	if e.timerStop != nil {
		e.timerStop()
		e.timerStop = nil
	}
	close(e.quit)
	close(e.notify)
	close(e.space)
	e.mu.Unlock()
	_ = e.bg.Wait(context.Background())
	e.svc.flushStats(context.Background(), e)
	// Once more, for the guard fields of the batches just applied: no later
	// flush of this engine would delete them, and they would stay in the
	// subscription's stats hash for good.
	e.svc.flushStats(context.Background(), e)
	e.svc.forgetHeld(e.path)
}

// idleSince is the real time of the last receive, or now while one waits.
func (e *engine) idleSince() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.waiters > 0 {
		return time.Now()
	}
	return e.lastActive
}

func (e *engine) activeLocked() bool {
	return e.waiters > 0 || time.Since(e.lastActive) < e.svc.opts.Consumers.ActiveWindow
}

// handBackIfIdle gives messages waiting here back to the broker when no
// receive came for ActiveWindow, so that replicas with receivers get them.
func (e *engine) handBackIfIdle() {
	var back []*record
	e.mu.Lock()
	if e.closed || e.activeLocked() || e.ready.len() == 0 {
		e.mu.Unlock()
		return
	}
	for r := e.ready.popFront(); r != nil; r = e.ready.popFront() {
		if r.state != stReady {
			continue
		}
		e.removeLocked(r)
		back = append(back, r)
	}
	e.mu.Unlock()
	for _, r := range back {
		r.cc.nack(r.msg.ID())
	}
}

// --- consumers and the pump ---

func consumerName(node string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return node + "-" + hex.EncodeToString(b[:])
}

func (e *engine) subscribe(cc *clusterConsumer) (pulsar.Consumer, error) {
	cfg := e.cfg.Load()
	opts := e.svc.consumerOptions(cfg, cc.idx)
	return cc.cluster.Client.Subscribe(opts)
}

// runConsumer subscribes (retrying while the cluster is unreachable, so a
// down disaster-recovery cluster never blocks the primary) and pumps.
func (e *engine) runConsumer(cc *clusterConsumer) {
	backoff := 100 * time.Millisecond
	var cons pulsar.Consumer
	for {
		var err error
		if cons, err = e.subscribe(cc); err == nil {
			break
		}
		e.log.Warn("subscribe failed; retrying", "cluster", cc.cluster.Name, "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-e.quit:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	cc.cons.Store(&pulsarConsumer{cons})
	defer func() {
		cons.Close()
	}()
	ch := cons.Chan()
	for {
		if !e.waitSpace() {
			return
		}
		select {
		case cm, ok := <-ch:
			if !ok {
				return
			}
			e.incoming(cc, cm.Message)
		case <-e.quit:
			return
		}
	}
}

// waitSpace blocks while the replica holds as many messages as it may, or
// while no receiver is active; it reports false when the engine closes.
func (e *engine) waitSpace() bool {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return false
		}
		if e.ready.len() < e.svc.opts.Consumers.MaxReady && len(e.records) < e.svc.opts.Consumers.MaxHeld && e.activeLocked() {
			e.mu.Unlock()
			return true
		}
		ch := e.space
		e.spaceWait++
		e.mu.Unlock()
		select {
		case <-ch:
		case <-e.quit:
		}
		e.mu.Lock()
		e.spaceWait--
		e.mu.Unlock()
	}
}

// incoming filters one message: a non-matching one is acknowledged at
// once and counted; a matching one is queued for receivers.
func (e *engine) incoming(cc *clusterConsumer, msg pulsar.Message) {
	id := msg.ID()
	key := copyKey{cluster: uint8(cc.idx), partition: id.PartitionIdx(), ledger: id.LedgerID(), entry: id.EntryID(), batch: id.BatchIdx()}
	props := msg.Properties()
	tags := wire.ParseTags(props[wire.PropTags])
	cfg := e.cfg.Load()
	if !cfg.filter.Match(tags) {
		cc.ack(id)
		if !e.filtered.first(key) {
			// Filtered here before: the broker sent it again because
			// the ack was lost (a reconnect). Acknowledged again, counted
			// and traced once.
			return
		}
		e.stats.add(outFiltered, tags)
		if !e.svc.opts.SkipFilteredEvents {
			e.svc.trace(traceFiltered, e, msg, cc, tags, 0, Caller{}, "")
		}
		return
	}
	uid := props[wire.PropUID]
	if len(uid) > maxUIDBytes {
		uid = ""
	}
	step := retryStepOf(props)
	var kh string
	if cfg.byKey() {
		kh = keyHashOf(props)
	}
	r := &record{key: key, uid: uid, step: step, keyHash: kh, stateID: stateIDFor(uid, step, key, kh), msg: msg, cc: cc, tags: tags, hidx: -1}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if _, ok := e.records[key]; ok {
		// The broker sent the entry again (another message of its batch
		// was handed back); this copy is already tracked here.
		return
	}
	e.records[key] = r
	e.ready.pushBack(r)
	e.signalReadyLocked()
}

func (e *engine) signalReadyLocked() {
	if e.waiters > 0 && !e.closed {
		close(e.notify)
		e.notify = make(chan struct{})
	}
}

// signalSpaceLocked wakes the pumps waiting for space. Nobody waiting is
// the usual case: then it allocates nothing.
func (e *engine) signalSpaceLocked() {
	if e.closed || e.spaceWait == 0 {
		return
	}
	close(e.space)
	e.space = make(chan struct{})
}

// removeLocked forgets a record (acknowledged, dropped or handed back).
func (e *engine) removeLocked(r *record) {
	if r.state == stGone {
		return
	}
	if e.records[r.key] == r {
		delete(e.records, r.key)
	}
	e.timers.unschedule(r)
	r.state = stGone
	e.signalSpaceLocked()
}

// --- receive ---

// take removes up to n records from the ready queue for leasing, and
// wakes the pumps (a receive makes the engine active).
func (e *engine) take(n int) []*record {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastActive = time.Now()
	var out []*record
	for len(out) < n {
		r := e.ready.popFront()
		if r == nil {
			break
		}
		if r.state != stReady {
			continue
		}
		r.state = stLeasing
		out = append(out, r)
	}
	e.signalSpaceLocked()
	return out
}

// receive long-polls for up to max messages, waiting at most wait.
func (e *engine) receive(ctx context.Context, maxN int, wait time.Duration, caller Caller) ([]Message, error) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var out []Message
	var lastErr error
	for {
		recs := e.take(maxN - len(out))
		if len(recs) > 0 {
			var err error
			if out == nil {
				out = make([]Message, 0, len(recs))
			}
			out, err = e.lease(ctx, recs, caller, out)
			if err != nil {
				lastErr = err
				if len(out) == 0 {
					return nil, err
				}
			}
			if len(out) >= maxN {
				return out, nil
			}
			continue
		}
		if len(out) > 0 || wait <= 0 {
			return out, nil
		}
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return out, nil
		}
		if e.ready.len() > 0 {
			e.mu.Unlock()
			continue
		}
		e.waiters++
		ch := e.notify
		e.mu.Unlock()
		var stop bool
		select {
		case <-ch:
		case <-timeout:
			stop = true
		case <-ctx.Done():
			stop = true
		case <-e.quit:
			stop = true
		}
		e.mu.Lock()
		e.waiters--
		e.lastActive = time.Now()
		e.mu.Unlock()
		if stop {
			if len(out) == 0 && lastErr != nil {
				return nil, lastErr
			}
			return out, nil
		}
	}
}

// lease asks Redis for each record's lease and acts on the answers. It
// appends the messages to hand out to out.
func (e *engine) lease(ctx context.Context, recs []*record, caller Caller, out []Message) ([]Message, error) {
	cfg := e.cfg.Load()
	svc := e.svc
	now := svc.clock.Now()
	keep := svc.leaseKeep(cfg.ackTimeout)
	attempt := newAttempt()
	args := make([]any, 0, 7+2*len(recs))
	args = append(args, svc.states.widthArg(), now.UnixMilli(), cfg.ackTimeout.Milliseconds(),
		cfg.MaxDeliveries, svc.opts.DeadLetter.Lease.Milliseconds(), keep.Milliseconds(), attempt)
	for _, r := range recs {
		args = append(args, r.stateID)
	}
	for _, r := range recs {
		args = append(args, r.key.String())
	}
	sp := svc.states.space(e.binding, cfg.ackTimeout)
	vals, err := svc.states.eval(ctx, leaseScript, sp, len(recs), args, 4)
	if err != nil {
		// The script may have run (or may yet run) with its answer lost:
		// withdraw the attempt, so the 503 that says nothing changed is
		// true; if even that fails, say what is leased and until when.
		undone, rerr := svc.states.release(sp, attempt, keep,
			now.Add(cfg.ackTimeout).UnixMilli(), now.Add(svc.opts.DeadLetter.Lease).UnixMilli(), recs)
		e.requeue(recs)
		if rerr != nil {
			e.log.Warn("a failed lease could not be withdrawn: its messages may stay leased until the ack timeout",
				"err", err, "withdrawErr", rerr, "messages", len(recs), "ackTimeout", cfg.ackTimeout)
			return out, leaseUnknownError(err, cfg.ackTimeout)
		}
		if undone > 0 {
			e.log.Info("a lease whose answer was lost was withdrawn", "err", err, "undone", undone)
		}
		return out, storeError(err)
	}
	var drop []*record
	for i, res := range parseLeases(vals) {
		r := recs[i]
		switch res.outcome {
		case leaseDeliver:
			out = append(out, e.deliver(r, res, cfg, caller, now))
		case leaseConsumed:
			// Acknowledged (counted where that delivery was held) or
			// dead-lettered: a copy the broker sent again, or another copy
			// of the uid.
			if !res.same {
				e.stats.add(outDuplicates, r.tags)
			}
			drop = append(drop, r)
		case leaseDuplicate:
			e.stats.add(outDuplicates, r.tags)
			drop = append(drop, r)
		case leaseHold:
			e.schedule(r, stHeld, res.until.Add(holdSlack))
		case leaseDeadLeter:
			e.startDeadLetter(r, res)
		}
	}
	e.drop(drop)
	return out, nil
}

// requeue puts records whose lease could not be asked for back at the
// front of the ready queue.
func (e *engine) requeue(recs []*record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.state != stLeasing {
			continue
		}
		r.state = stReady
		e.ready.pushFront(r)
	}
	e.signalReadyLocked()
}

// drop acknowledges copies that must not be delivered (consumed already,
// or duplicates of a uid delivered from another copy).
func (e *engine) drop(recs []*record) {
	if len(recs) == 0 {
		return
	}
	e.mu.Lock()
	for _, r := range recs {
		e.removeLocked(r)
	}
	e.mu.Unlock()
	for _, r := range recs {
		r.cc.ack(r.msg.ID())
	}
}

func (e *engine) schedule(r *record, st recState, due time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.state == stGone {
		return
	}
	r.state = st
	e.timers.schedule(r, due)
	e.armLocked(e.svc.clock.Now())
}

func (e *engine) deliver(r *record, res leaseResult, cfg *Subscription, caller Caller, now time.Time) Message {
	svc := e.svc
	e.mu.Lock()
	if r.state == stLeasing {
		r.state = stInflight
		r.n = res.n
		e.timers.schedule(r, res.until)
		e.armLocked(now)
	}
	e.mu.Unlock()
	id := r.msg.ID()
	a := AckID{
		Cluster: r.key.cluster, Partition: r.key.partition, Ledger: r.key.ledger, Entry: r.key.entry,
		BatchIdx: r.key.batch, BatchSize: id.BatchSize(), Delivery: res.n,
		Expires: now.Add(svc.opts.State.DedupWindow), Node: svc.node, Binding: e.binding, UID: r.uid,
		RetryStep: r.step, KeyHash: r.keyHash,
	}
	e.stats.add(outDelivered, r.tags)
	if res.n > 1 {
		e.stats.add(outRedelivered, r.tags)
	}
	svc.trace(traceDelivered, e, r.msg, r.cc, r.tags, res.n, caller, "")
	return toMessage(r, svc.signer.Encode(&a), res.n, len(svc.opts.Clusters))
}

// --- local acks and nacks (from this replica's requests or from peers) ---

// ackLocal acknowledges the copies held here, if any. The ack is counted
// by the replica that handed the message out (the record in flight), so a
// copy also held here while another replica's lease ran counts once.
func (e *engine) ackLocal(keys []copyKey) {
	var acked []*record
	var counted []bool
	e.mu.Lock()
	for _, k := range keys {
		r := e.records[k]
		if r == nil || r.state == stLeasing || r.state == stDeadLettering {
			continue
		}
		counted = append(counted, r.state == stInflight)
		e.removeLocked(r)
		acked = append(acked, r)
	}
	e.mu.Unlock()
	now := e.svc.clock.Now()
	for i, r := range acked {
		r.cc.ack(r.msg.ID())
		if counted[i] {
			e.stats.add(outAcked, r.tags)
			e.svc.metrics.observeAck(r.msg.Properties(), r.tags, now)
		}
	}
}

// nackLocal moves the end of an in-flight delivery's lease to due. It
// reports whether this replica holds that delivery.
func (e *engine) nackLocal(k copyKey, delivery int, due time.Time) bool {
	e.mu.Lock()
	r := e.records[k]
	if r == nil || r.state != stInflight || r.n != delivery {
		e.mu.Unlock()
		return false
	}
	e.timers.schedule(r, due)
	e.armLocked(e.svc.clock.Now())
	e.mu.Unlock()
	e.stats.add(outNacked, r.tags)
	return true
}

// --- timers ---

// armLocked makes sure the timer goroutine wakes up when the earliest
// record is due.
func (e *engine) armLocked(now time.Time) {
	if e.closed || len(e.timers) == 0 {
		return
	}
	at := e.timers[0].due
	if e.timerStop != nil && !e.timerAt.After(at) {
		return // an earlier or equal wake-up is already set
	}
	if e.timerStop != nil {
		e.timerStop()
		e.timerStop = nil
	}
	d := at.Sub(now)
	if d <= 0 {
		e.wake()
		return
	}
	e.timerAt = at
	e.timerStop = e.svc.clock.AfterFunc(d, e.wake)
}

func (e *engine) wake() {
	select {
	case e.tick <- struct{}{}:
	default:
	}
}

func (e *engine) timerLoop() {
	for {
		select {
		case <-e.tick:
			e.fireDue()
		case <-e.quit:
			return
		}
	}
}

// fireDue handles records whose lease ended (or whose foreign lease should
// be looked at again). While receivers are active here they go back to the
// front of the ready queue, to be leased again; otherwise they are handed
// back to the broker, which can give them to a replica that has receivers.
func (e *engine) fireDue() {
	now := e.svc.clock.Now()
	var back []*record
	e.mu.Lock()
	if e.timerStop != nil {
		e.timerStop()
		e.timerStop = nil
	}
	active := e.activeLocked()
	requeued := false
	for len(e.timers) > 0 && !e.timers[0].due.After(now) {
		r := heap.Pop(&e.timers).(*record)
		switch r.state {
		case stInflight, stHeld:
			if active {
				r.state = stReady
				e.ready.pushFront(r)
				requeued = true
			} else {
				e.removeLocked(r)
				back = append(back, r)
			}
		}
	}
	if requeued {
		e.signalReadyLocked()
	}
	e.armLocked(now)
	e.mu.Unlock()
	for _, r := range back {
		r.cc.nack(r.msg.ID())
	}
}
