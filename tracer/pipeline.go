package tracer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/group"
)

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
	sleep     func(time.Duration)        // Pipeline.yield's pause
	deferring atomic.Bool                // the outbox holds batches parked by the budget, not by a failure
	draining  atomic.Bool                // Close is draining deferred batches: no budget
	stalls    atomic.Uint64              // replay passes stopped by a sink that did not take a record
	replayAt  atomic.Int64               // earliest event time (µs) of the record being replayed; 0: none
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
		sleep:      time.Sleep,
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
