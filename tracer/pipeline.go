package tracer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/group"
)

// Options configures a Pipeline. Sink and Dir are required; zero values of
// the others take the defaults noted.
type Options struct {
	Sink Sink   // where events go
	Dir  string // the outbox directory (created if missing, locked while open)

	QueueSize     int           // events buffered between Record and the writer; 16384
	OverflowSize  int           // events buffered for the overflow spiller when the queue is full; 16384
	BatchSize     int           // events per sink write and per outbox record; 500
	FlushInterval time.Duration // longest an event waits for its batch to fill; 200ms
	WriteTimeout  time.Duration // deadline of one sink write; 10s

	ReplayMinBackoff time.Duration // first wait after a failed replay; 500ms
	ReplayMaxBackoff time.Duration // longest wait between replay attempts; 30s

	// IngestBudget is the share of one CPU the sink may use while the data
	// plane is busy (see governor): 0.005; negative: never defer, write each
	// batch as soon as it is full. Batches beyond the budget wait in the
	// outbox and are replayed when the data plane is quiet.
	IngestBudget float64
	// BusyCPUShare is the share of GOMAXPROCS that the process's CPU
	// outside the sink, plus the CPU the sink needs to keep up, must reach
	// before the budget applies: below it there are CPUs to spare and the
	// sink writes at full speed. 0.7; negative: the budget applies whatever
	// the process's CPU (the arrival rate alone decides).
	BusyCPUShare float64
	// DeferMaxBytes and DeferMaxAge end deferral: once the outbox holds more
	// than DeferMaxBytes, or its oldest event is older than DeferMaxAge, the
	// sink runs at full speed whatever the data plane is doing. 256 MiB
	// (at most a quarter of MaxOutboxBytes) and 5m.
	DeferMaxBytes int64
	DeferMaxAge   time.Duration

	SegmentBytes   int64 // outbox segment size before a new file is started; 64 MiB
	MaxOutboxBytes int64 // outbox size beyond which spills fail (and are counted); 1 GiB; <0 for no limit
	SyncEachSpill  bool  // fsync after every outbox record, not only when a segment is sealed

	// Registerer receives the pipeline's metrics (nil: not registered).
	// They are unregistered on Close.
	Registerer prometheus.Registerer
	Logger     *slog.Logger // slog.Default() when nil
}

func (o *Options) defaults() error {
	if o.Sink == nil {
		return errors.New("tracer: pipeline needs a sink")
	}
	if o.Dir == "" {
		return errors.New("tracer: pipeline needs an outbox directory")
	}
	setDefault(&o.QueueSize, 16384)
	setDefault(&o.OverflowSize, 16384)
	setDefault(&o.BatchSize, 500)
	setDefault(&o.FlushInterval, 200*time.Millisecond)
	setDefault(&o.WriteTimeout, 10*time.Second)
	setDefault(&o.ReplayMinBackoff, 500*time.Millisecond)
	setDefault(&o.ReplayMaxBackoff, 30*time.Second)
	setDefault(&o.SegmentBytes, 64<<20)
	if o.MaxOutboxBytes == 0 {
		o.MaxOutboxBytes = 1 << 30
	}
	if o.IngestBudget == 0 {
		o.IngestBudget = 0.005
	}
	if o.BusyCPUShare == 0 {
		o.BusyCPUShare = 0.7
	}
	if o.DeferMaxBytes <= 0 {
		o.DeferMaxBytes = 256 << 20
		if o.MaxOutboxBytes > 0 {
			o.DeferMaxBytes = min(o.DeferMaxBytes, o.MaxOutboxBytes/4)
		}
	}
	setDefault(&o.DeferMaxAge, 5*time.Minute)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Stats counts what happened to recorded events. Every event given to Record
// ends up in exactly one of: Dropped (never accepted), Written, Rejected,
// SpillFailed, or the outbox, from which it later becomes Replayed or
// Rejected, or is kept in a corrupt segment. So once the outbox is empty:
//
//	Recorded == Written + Replayed + Rejected + SpillFailed
type Stats struct {
	Recorded      uint64 // accepted by Record (into the queue or the overflow buffer)
	Overflowed    uint64 // of Recorded, those that went through the overflow buffer
	DroppedFull   uint64 // refused by Record because the queue and overflow buffer were full
	DroppedClosed uint64 // refused by Record because the pipeline was closed
	Written       uint64 // stored by the sink on the direct path
	Spilled       uint64 // appended to the outbox
	Replayed      uint64 // stored by the sink from the outbox
	Rejected      uint64 // refused by the sink for good (e.g. Elasticsearch 400); logged
	SpillFailed   uint64 // lost because the outbox could not take them (full, disk error); logged
	Corrupt       uint64 // outbox records that could not be read; their segment is kept as .corrupt
	SinkFailures  uint64 // sink writes that failed in whole or in part
	Deferred      uint64 // of Spilled, those parked in the outbox by the ingest budget rather than a sink failure

	IngestCPU  time.Duration // CPU time spent in sink writes (see measureCPU)
	Lag        time.Duration // age of the oldest event waiting in the outbox; 0 when it is empty
	Throttled  bool          // the ingest budget is holding the sink back
	DeferLimit bool          // a deferral limit is reached: the sink runs at full speed
	// DeferLimitHits counts the times a deferral limit was reached.
	DeferLimitHits uint64

	QueueLen       int   // events waiting in the queue
	OverflowLen    int   // events waiting in the overflow buffer
	OutboxBytes    int64 // bytes waiting in the outbox
	OutboxSegments int   // segment files waiting in the outbox
}

// Dropped is every event Record refused.
func (s Stats) Dropped() uint64 { return s.DroppedFull + s.DroppedClosed }

type counters struct {
	recorded atomic.Uint64
	_        [56]byte // keep the hot counter on its own cache line
	overflowed,
	droppedFull,
	droppedClosed,
	written,
	spilled,
	replayed,
	rejected,
	spillFailed,
	corrupt,
	sinkFailures,
	deferred,
	ingestCPU atomic.Uint64 // nanoseconds
}

// Pipeline is the Recorder the data plane uses in production: Record puts
// the event in a bounded queue without blocking; a writer goroutine sends
// batches to the Sink; while the sink fails, batches go to the outbox, a
// local directory of checksummed append-only files, and a replayer goroutine
// writes them to the sink, in order, once it accepts writes again. When the
// queue is full, events go to an overflow buffer whose goroutine spills them
// straight to the outbox; only when that is full too is an event dropped,
// and counted.
//
// Create with NewPipeline, then Start; Close stops it, writing or spilling
// what is pending. A Pipeline is safe for concurrent use.
type Pipeline struct {
	opts Options
	log  *slog.Logger
	ob   *outbox

	mu     sync.RWMutex // write-locked once, by Close, to stop Record
	closed bool

	queue    chan Event
	overflow chan Event
	wake     chan struct{} // the outbox has new data

	ctx        context.Context // cancelled when Close gives up waiting
	cancel     context.CancelFunc
	finalCtx   context.Context // Close's context, for the writer's last flush
	stopIngest chan struct{}
	stopReplay chan struct{}
	ingest     group.Group // the writer and the overflow goroutine
	replay     group.Group // the replayer

	startOnce sync.Once
	closeOnce sync.Once
	closeErr  error

	c          counters
	collectors []prometheus.Collector
	resume     resumePoint // replayer only

	gov       *governor
	now       func() time.Time
	measure   func(func()) time.Duration // CPU time of a sink write
	procCPU   func() time.Duration       // the process's CPU time so far; < 0: unknown
	deferring atomic.Bool                // the outbox holds batches parked by the budget, not by a failure
	draining  atomic.Bool                // Close is draining deferred batches: no budget
	stalls    atomic.Uint64              // replay passes stopped by a sink that did not take a record
	replayAt  atomic.Int64               // earliest event time (µs) of the record being replayed; 0: none
}

// resumePoint is where the replayer stopped inside a segment.
type resumePoint struct {
	seq  uint64
	off  int64   // offset of the first record not fully stored
	left []Event // events of that record still to store; nil: all of it
}

var _ Recorder = (*Pipeline)(nil)

// NewPipeline opens the outbox and registers the metrics. It does not start
// any goroutine.
func NewPipeline(opts Options) (*Pipeline, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	ob, err := openOutbox(opts.Dir, opts.SegmentBytes, opts.MaxOutboxBytes, opts.SyncEachSpill)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pipeline{
		opts:       opts,
		log:        opts.Logger.With("component", "tracer"),
		ob:         ob,
		queue:      make(chan Event, opts.QueueSize),
		overflow:   make(chan Event, opts.OverflowSize),
		wake:       make(chan struct{}, 1),
		ctx:        ctx,
		cancel:     cancel,
		finalCtx:   context.Background(),
		stopIngest: make(chan struct{}),
		stopReplay: make(chan struct{}),
		now:        time.Now,
		measure:    measureCPU,
		procCPU:    processCPU,
	}
	p.gov = newGovernor(opts.IngestBudget, opts.DeferMaxBytes, opts.DeferMaxAge, opts.BusyCPUShare, p.now())
	if opts.Registerer != nil {
		if err := p.register(opts.Registerer); err != nil {
			cancel()
			return nil, errors.Join(err, ob.close())
		}
	}
	return p, nil
}

// Start launches the writer, overflow and replay goroutines. Calling it
// again does nothing.
func (p *Pipeline) Start() {
	p.startOnce.Do(func() {
		p.ingest.Go(p.runWriter)
		p.ingest.Go(p.runOverflow)
		p.replay.Go(p.runReplayer)
		p.signalReplay() // segments left by an earlier run
	})
}

// Record queues ev without blocking. A zero Time is set to now. See Recorder.
func (p *Pipeline) Record(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.c.droppedClosed.Add(1)
		return
	}
	select {
	case p.queue <- ev:
		p.c.recorded.Add(1)
	default:
		select {
		case p.overflow <- ev:
			p.c.recorded.Add(1)
			p.c.overflowed.Add(1)
		default:
			p.c.droppedFull.Add(1)
		}
	}
	p.mu.RUnlock()
}

// Stats returns a snapshot of the counters.
func (p *Pipeline) Stats() Stats {
	bytes, segs := p.ob.size()
	now := p.now()
	limited, hits := p.gov.atLimit()
	return Stats{
		DeferLimitHits: hits,
		Deferred:       p.c.deferred.Load(),
		IngestCPU:      time.Duration(p.c.ingestCPU.Load()),
		Lag:            p.lag(now),
		Throttled:      p.gov.throttling(now),
		DeferLimit:     limited,
		Recorded:       p.c.recorded.Load(),
		Overflowed:     p.c.overflowed.Load(),
		DroppedFull:    p.c.droppedFull.Load(),
		DroppedClosed:  p.c.droppedClosed.Load(),
		Written:        p.c.written.Load(),
		Spilled:        p.c.spilled.Load(),
		Replayed:       p.c.replayed.Load(),
		Rejected:       p.c.rejected.Load(),
		SpillFailed:    p.c.spillFailed.Load(),
		Corrupt:        p.c.corrupt.Load(),
		SinkFailures:   p.c.sinkFailures.Load(),
		QueueLen:       len(p.queue),
		OverflowLen:    len(p.overflow),
		OutboxBytes:    bytes,
		OutboxSegments: segs,
	}
}

// Close stops accepting events, writes what is queued to the sink (or to the
// outbox when the sink fails or ctx ends), stops the goroutines and closes
// the outbox. Events still in the outbox are replayed by the next Pipeline
// opened on the same directory. Close is idempotent; later calls return the
// first call's result.
func (p *Pipeline) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.finalCtx = ctx
		p.mu.Unlock()
		p.Start() // a pipeline closed before Start still drains its queue

		close(p.stopIngest)
		if p.ingest.Wait(ctx) != nil {
			p.cancel() // abort sink writes; the writer then spills, which is local
			_ = p.ingest.Wait(context.Background())
		}
		if p.deferring.Load() && ctx.Err() == nil {
			p.drainDeferred(ctx)
		}
		close(p.stopReplay)
		p.cancel()
		_ = p.replay.Wait(context.Background())

		for _, c := range p.collectors {
			p.opts.Registerer.Unregister(c)
		}
		p.closeErr = p.ob.close()
		if p.closeErr == nil {
			p.closeErr = ctx.Err()
		}
	})
	return p.closeErr
}

// drainDeferred lets the replayer write what the budget parked in the
// outbox, at full speed, until the outbox is empty, ctx ends or the sink
// stops taking records (then the rest waits for the next start, as after
// an outage). An event the sink rejects for good does not stop it: it is
// counted as rejected and the replay goes on.
func (p *Pipeline) drainDeferred(ctx context.Context) {
	p.draining.Store(true)
	stalls := p.stalls.Load()
	p.signalReplay()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for p.ob.pending() && p.stalls.Load() == stalls {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

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

func (p *Pipeline) signalReplay() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
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

// errSinkDown stops a replay pass when the sink does not take a record.
var errSinkDown = errors.New("tracer: sink not accepting writes")

// runReplayer delivers the outbox to the sink, oldest record first, and
// backs off exponentially while the sink fails.
func (p *Pipeline) runReplayer() {
	backoff := p.opts.ReplayMinBackoff
	for {
		select {
		case <-p.stopReplay:
			return
		case <-p.wake:
		}
		for {
			err := p.replayAll()
			if err == nil {
				backoff = p.opts.ReplayMinBackoff
				break
			}
			if errors.Is(err, errSinkDown) {
				p.stalls.Add(1)
			} else {
				p.log.Error("trace outbox replay failed", "err", err)
			}
			t := time.NewTimer(backoff)
			select {
			case <-p.stopReplay:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, p.opts.ReplayMaxBackoff)
		}
	}
}

// replayAll replays segments until the outbox is empty. It returns
// errSinkDown when the sink refuses a record, or an outbox error.
func (p *Pipeline) replayAll() error {
	for {
		select {
		case <-p.stopReplay:
			return nil
		default:
		}
		seq, ok, err := p.ob.oldest()
		if err != nil || !ok {
			return err
		}
		if err := p.replaySegment(seq); err != nil {
			return err
		}
	}
}

func (p *Pipeline) replaySegment(seq uint64) error {
	if p.resume.seq != seq {
		p.resume = resumePoint{seq: seq}
	}
	r, err := openSegment(p.ob.path(seq), p.resume.off)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return p.ob.done(seq, false)
		}
		return err
	}
	for {
		if !p.waitBudget() {
			_ = r.close()
			return nil // stopping; p.resume says where to go on
		}
		start := r.off
		evs, err := r.next()
		if errors.Is(err, io.EOF) {
			_ = r.close()
			p.resume = resumePoint{}
			p.replayAt.Store(0)
			return p.ob.done(seq, false)
		}
		if err != nil {
			_ = r.close()
			p.c.corrupt.Add(1)
			p.replayAt.Store(0)
			p.log.Error("trace outbox segment unreadable; kept for inspection", "segment", p.ob.path(seq)+".corrupt", "offset", start, "err", err)
			p.resume = resumePoint{}
			return p.ob.done(seq, true)
		}
		if p.resume.left != nil && p.resume.off == start {
			evs = p.resume.left
		}
		if len(evs) > 0 {
			oldest := evs[0].Time.UnixMicro()
			for i := range evs {
				oldest = min(oldest, evs[i].Time.UnixMicro())
			}
			p.replayAt.Store(oldest)
		}
		ctx, cancel := context.WithTimeout(p.ctx, p.opts.WriteTimeout)
		werr := p.sinkWrite(ctx, evs)
		cancel()
		if retry := p.settle(evs, werr, &p.c.replayed, "replay"); len(retry) > 0 {
			_ = r.close()
			p.resume = resumePoint{seq: seq, off: start, left: retry}
			return errSinkDown
		}
		p.resume = resumePoint{seq: seq, off: r.off}
	}
}
