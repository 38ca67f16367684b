package tracer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// runWriter batches queued events and writes them to the sink, or to the
// outbox while the outbox holds older events or the sink fails.
func (p *Pipeline) runWriter() {
	w := &batcher{p: p, batch: make([]Event, 0, p.opts.BatchSize)}
	tick := time.NewTicker(p.opts.FlushInterval)
	defer tick.Stop()
	var loggedDrops uint64
	for {
		select {
		case ev := <-p.queue:
			w.add(p.ctx, ev)
			// Take what else is queued, then let the queue fill for a
			// moment: a writer parked on the channel is woken by every
			// Record (a futex call on the produce path at tens of
			// thousands of events a second); one that sleeps between
			// drains is woken by its timer a few hundred times a second.
		drain:
			for range p.opts.BatchSize {
				select {
				case ev := <-p.queue:
					w.add(p.ctx, ev)
				default:
					break drain
				}
			}
			time.Sleep(writerLinger)
		case <-tick.C:
			w.flush(p.ctx) // samples the load even when the batch is empty
			if d := p.c.droppedFull.Load(); d != loggedDrops {
				p.log.Warn("trace events dropped: queue and overflow buffer full", "dropped", d-loggedDrops, "dropped_total", d)
				loggedDrops = d
			}
		case <-p.stopIngest:
			p.mu.RLock()
			final := p.finalCtx
			p.mu.RUnlock()
			ctx, cancel := mergeCancel(final, p.ctx)
			w.final = true
			for {
				select {
				case ev := <-p.queue:
					w.add(ctx, ev)
					continue
				default:
				}
				break
			}
			w.flush(ctx)
			cancel()
			return
		}
	}
}

// writerLinger is how long the writer lets the queue fill between drains:
// at 100k events/s that is 200 events, far below any queue size.
const writerLinger = 2 * time.Millisecond

// mergeCancel returns a context carrying a's values and deadline that is
// also cancelled when b is.
func mergeCancel(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}

// batcher is the writer's batch; only the writer goroutine uses it.
type batcher struct {
	p     *Pipeline
	batch []Event
	enc   []byte
	final bool // Close is flushing: write, do not defer
}

func (w *batcher) add(ctx context.Context, ev Event) {
	w.batch = append(w.batch, ev)
	if len(w.batch) >= w.p.opts.BatchSize {
		w.flush(ctx)
	}
}

func (w *batcher) flush(ctx context.Context) {
	p := w.p
	if !w.final {
		// Sampled at every batch and every flush tick: a burst after a
		// quiet spell is then held back from its first batches instead of
		// being written at full speed until the next tick (the governor's
		// averages move at most every 50 ms); an idle tick lets them fall.
		p.sampleLoad()
	}
	if len(w.batch) == 0 {
		return
	}
	pending := p.ob.pending()
	if !pending {
		p.deferring.Store(false)
	}
	switch {
	case pending || ctx.Err() != nil:
		// Older events wait in the outbox (the sink is, or was just, failing,
		// or the budget parked them): queue behind them and let the replayer
		// deliver in order.
		if p.deferring.Load() {
			p.c.deferred.Add(uint64(len(w.batch)))
		}
		w.enc = p.spill(w.enc, w.batch)
	case !w.final && p.gov.hold(p.now()) > 0:
		// The data plane is busy and the sink has used its CPU budget: park
		// the batch; the replayer writes it when the budget allows.
		p.deferring.Store(true)
		p.c.deferred.Add(uint64(len(w.batch)))
		w.enc = p.spill(w.enc, w.batch)
	default:
		wctx, cancel := context.WithTimeout(ctx, p.opts.WriteTimeout)
		err := p.sinkWrite(wctx, w.batch)
		cancel()
		if retry := p.settle(w.batch, err, &p.c.written, "write"); len(retry) > 0 {
			p.deferring.Store(false) // what follows waits for the sink, not for the budget
			w.enc = p.spill(w.enc, retry)
		}
	}
	clear(w.batch) // drop references to tags and properties
	w.batch = w.batch[:0]
}

// sinkWrite fills in the event ids, writes to the sink and charges the CPU
// it took to the governor. Ids are computed here, not when events are
// recorded or spilled, so that a batch parked in the outbox while the data
// plane is busy costs no hashing until it is written; they are
// deterministic (ComputeID), so when they are computed does not matter.
func (p *Pipeline) sinkWrite(ctx context.Context, events []Event) error {
	var err error
	ctx = withYield(ctx, p.yield)
	cpu := p.measure(func() {
		for i := range events {
			ensureID(&events[i])
		}
		err = p.opts.Sink.Write(ctx, events)
	})
	p.c.ingestCPU.Add(uint64(max(cpu, 0)))
	p.gov.charge(p.now(), cpu, len(events))
	return err
}

// yield is called by the sink between the pieces of a write (yieldPoint);
// took is how long the piece just written took. While the data plane is
// active it sleeps governor.yieldFactor times as long (at most
// maxSinkYield), so the sink takes what the data plane leaves: a third of a
// CPU when the data plane uses half of them, a ninth when it uses 80%, in
// pieces of about a millisecond.
//
// A sleep, not runtime.Gosched: with one P (GOMAXPROCS=1, a sidecar given
// one CPU) a goroutine that only yields is put back on the run queue and
// picked again before the scheduler polls the network, so requests whose
// sockets became readable wait for sysmon's poll, up to 10 ms. A sleeping
// sink leaves the P free, the scheduler polls the network and the requests
// run first. Before the store wrote in chunks and paused, a commit of 500
// events held the P for 5-16 ms at a time, and a drain of the outbox for
// 0.2-1 s (docs/benchmarks.md, ADR 020).
func (p *Pipeline) yield(took time.Duration) {
	if took <= 0 || p.draining.Load() {
		return
	}
	if f := p.gov.yieldFactor(); f > 0 {
		p.sleep(min(time.Duration(f*float64(took)), maxSinkYield))
	}
}

const maxSinkYield = 20 * time.Millisecond

// sampleLoad feeds the governor the arrival count and the outbox's state.
func (p *Pipeline) sampleLoad() {
	now := p.now()
	bytes, _ := p.ob.size()
	p.gov.sample(now, p.c.recorded.Load(), bytes, p.lag(now), p.procCPU())
}

// lag is the age of the oldest event waiting in the outbox.
func (p *Pipeline) lag(now time.Time) time.Duration {
	oldest := p.replayAt.Load()
	if oldest == 0 {
		oldest = p.ob.oldestTime()
	}
	if oldest == 0 {
		return 0
	}
	return max(now.Sub(time.UnixMicro(oldest)), 0)
}

// waitBudget holds the replayer while the governor says so. It returns
// false when the pipeline is stopping.
func (p *Pipeline) waitBudget() bool {
	for {
		if p.draining.Load() {
			return true
		}
		p.sampleLoad()
		d := p.gov.hold(p.now())
		if d <= 0 {
			return true
		}
		t := time.NewTimer(min(d, 100*time.Millisecond))
		select {
		case <-p.stopReplay:
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// settle counts the outcome of a sink write of batch: stored events are
// added to ok, permanent failures to Rejected. It returns the events to
// retry (a new slice).
func (p *Pipeline) settle(batch []Event, err error, ok *atomic.Uint64, op string) []Event {
	if err == nil {
		ok.Add(uint64(len(batch)))
		return nil
	}
	p.c.sinkFailures.Add(1)
	var be *BatchError
	if !errors.As(err, &be) {
		if Retriable(err) {
			p.log.Warn("trace sink write failed; events go to the outbox", "op", op, "events", len(batch), "err", err)
			return append([]Event(nil), batch...)
		}
		p.c.rejected.Add(uint64(len(batch)))
		p.log.Error("trace sink rejected a batch for good", "op", op, "events", len(batch), "first_id", batch[0].ID, "err", err)
		return nil
	}
	failed := make(map[int]bool, len(be.Items))
	var retry []Event
	var rejected int
	var firstRejected *ItemError
	for i := range be.Items {
		it := &be.Items[i]
		if it.Index < 0 || it.Index >= len(batch) || failed[it.Index] {
			continue
		}
		failed[it.Index] = true
		if it.Retriable {
			retry = append(retry, batch[it.Index])
			continue
		}
		rejected++
		if firstRejected == nil {
			firstRejected = it
		}
	}
	ok.Add(uint64(len(batch) - len(failed)))
	if rejected > 0 {
		p.c.rejected.Add(uint64(rejected))
		p.log.Error("trace sink rejected events for good", "op", op, "rejected", rejected,
			"first_id", batch[firstRejected.Index].ID, "status", firstRejected.Status, "reason", firstRejected.Reason)
	}
	if len(retry) > 0 {
		p.log.Warn("trace sink did not store some events; they go to the outbox", "op", op, "events", len(retry), "err", err)
	}
	return retry
}

// spill appends events to the outbox as one record (or more, if one would be
// too large), counting the outcome. buf is the caller's encoding buffer; the
// grown buffer is returned.
func (p *Pipeline) spill(buf []byte, events []Event) []byte {
	buf = appendRecord(buf[:0], events)
	oldest := events[0].Time.UnixMicro()
	for i := range events {
		oldest = min(oldest, events[i].Time.UnixMicro())
	}
	if len(buf)-recordHeaderLen > maxRecordLen && len(events) > 1 {
		half := len(events) / 2
		buf = p.spill(buf, events[:half])
		return p.spill(buf, events[half:])
	}
	var err error
	if len(buf)-recordHeaderLen > maxRecordLen {
		err = fmt.Errorf("%w: event of uid %s encodes to %d bytes", errRecordLength, events[0].UID, len(buf))
	} else {
		err = p.ob.append(buf, oldest)
	}
	if err != nil {
		p.c.spillFailed.Add(uint64(len(events)))
		p.log.Error("trace events lost: outbox write failed", "events", len(events), "first_uid", events[0].UID, "err", err)
	} else {
		p.c.spilled.Add(uint64(len(events)))
		p.signalReplay()
	}
	if cap(buf) > 4*maxRecordLen/64 { // do not keep a huge buffer around
		buf = nil
	}
	return buf
}

// runOverflow spills events that did not fit in the queue.
func (p *Pipeline) runOverflow() {
	batch := make([]Event, 0, p.opts.BatchSize)
	var enc []byte
	spill := func() {
		enc = p.spill(enc, batch)
		clear(batch)
		batch = batch[:0]
	}
	for {
		select {
		case ev := <-p.overflow:
			batch = append(batch, ev)
		drain:
			for len(batch) < p.opts.BatchSize {
				select {
				case ev := <-p.overflow:
					batch = append(batch, ev)
				default:
					break drain
				}
			}
			spill()
		case <-p.stopIngest:
			for {
				select {
				case ev := <-p.overflow:
					batch = append(batch, ev)
					if len(batch) >= p.opts.BatchSize {
						spill()
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				spill()
			}
			return
		}
	}
}
