package produce

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/group"
)

// ErrPoolClosed is returned by Pool.SendAsync after Close.
var ErrPoolClosed = errors.New("produce: producer pool closed")

// PoolOptions configure a Pool. Zero values take the defaults noted.
type PoolOptions struct {
	MaxProducers int           // 1000
	IdleTimeout  time.Duration // 10m
	// BatchingMaxPublishDelay is the client's batch timer. Batches are
	// normally sent sooner, when a producer has nothing more queued (see
	// Pool); the timer is the backstop. 5ms.
	BatchingMaxPublishDelay time.Duration
	BatchingMaxMessages     uint // 1000
	BatchingMaxBytes        uint // 128 KiB
	MaxPendingMessages      int  // 10000
	// SendTimeout bounds how long the client keeps an unacknowledged
	// message before it reports failure; the produce path sets it to the
	// request deadline so every callback comes by then. 10s.
	SendTimeout time.Duration
	Metrics     *PoolMetrics     // unregistered collectors when nil
	Logger      *slog.Logger     // slog.Default() when nil
	Now         func() time.Time // time.Now when nil; drives idle eviction
}

// Pool keeps one producer per topic. Producers are created on first use,
// closed after IdleTimeout without use, and at most MaxProducers stay open:
// beyond that the least recently used idle one is closed. A producer with
// messages in flight is never closed by the pool until Close.
//
// Batching is group commit: a message is added to its producer's batch,
// and when no other message is being handed over at that moment the batch
// is flushed at once (by a per-producer flusher goroutine, one flush in
// flight at a time). A lone request therefore waits for one broker round
// trip, not for the batch timer, and requests that arrive while a flush is
// in flight share the next one. pulsar-client-go offers no such mode for
// SendAsync (only the synchronous Send flushes immediately, and then
// batches hold one message).
//
// A Pool is safe for concurrent use. It owns its producers (and closes
// them); the caller owns the client and closes it after the pool.
type Pool struct {
	client pulsar.Client
	opts   PoolOptions
	log    *slog.Logger

	mu      sync.Mutex
	entries map[string]*poolEntry
	lru     *list.List // of *poolEntry, most recently used first
	closed  bool

	quit chan struct{}
	wg   sync.WaitGroup // creators, flushers, closers and the reaper
}

type poolEntry struct {
	topic    string
	ready    chan struct{} // closed once producer or err is set
	producer pulsar.Producer
	err      error

	// guarded by Pool.mu
	inflight int  // references: senders and unacknowledged messages
	retired  bool // out of the map; closed when inflight drops to 0
	closing  bool
	lastUsed time.Time
	elem     *list.Element

	handing  atomic.Int64  // SendAsync calls handing a message over right now
	flushReq chan struct{} // capacity 1: "flush when you can"
	stop     chan struct{} // closed to stop the flusher
	stopped  chan struct{} // closed when the flusher has returned
}

// NewPool returns a pool over client. Call Start to run idle eviction.
func NewPool(client pulsar.Client, opts PoolOptions) *Pool {
	if opts.MaxProducers <= 0 {
		opts.MaxProducers = 1000
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 10 * time.Minute
	}
	if opts.BatchingMaxPublishDelay <= 0 {
		opts.BatchingMaxPublishDelay = 5 * time.Millisecond
	}
	if opts.BatchingMaxMessages == 0 {
		opts.BatchingMaxMessages = 1000
	}
	if opts.BatchingMaxBytes == 0 {
		opts.BatchingMaxBytes = 128 << 10
	}
	if opts.MaxPendingMessages <= 0 {
		opts.MaxPendingMessages = 10000
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = NewPoolMetrics(nil)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Pool{
		client: client, opts: opts, log: log.With("component", "producer-pool"),
		entries: map[string]*poolEntry{}, lru: list.New(), quit: make(chan struct{}),
	}
}

// Start runs the idle reaper until Close.
func (p *Pool) Start() {
	every := min(p.opts.IdleTimeout/4, 30*time.Second)
	every = max(every, 10*time.Millisecond)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				p.EvictIdle()
			}
		}
	}()
}

// Len is the number of producers open or being created.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// SendAsync hands msg to topic's producer, creating it if needed (waiting
// at most until ctx is done), and calls done exactly once with the
// broker's message id or an error. done may run on the caller's goroutine
// or on the client's; it must not block. ctx bounds only the hand-over:
// once the producer has the message, the outcome comes within SendTimeout.
// Messages handed over by one goroutine keep their order.
func (p *Pool) SendAsync(ctx context.Context, topic string, msg *pulsar.ProducerMessage, done func(pulsar.MessageID, error)) {
	// Two references: one for the hand-over, one for the message until
	// its callback. Taken together, under one lock.
	e, err := p.acquire(ctx, topic, 2)
	if err != nil {
		done(nil, err)
		return
	}
	e.handing.Add(1)
	e.producer.SendAsync(ctx, msg, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
		p.release(e, err)
		done(id, err)
	})
	if e.handing.Add(-1) == 0 {
		select {
		case e.flushReq <- struct{}{}:
		default: // a flush is already requested; it will include this message
		}
	}
	p.release(e, nil)
}

// acquire returns topic's ready producer with refs references taken.
func (p *Pool) acquire(ctx context.Context, topic string, refs int) (*poolEntry, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	e := p.entries[topic]
	if e == nil {
		e = &poolEntry{topic: topic, ready: make(chan struct{}), flushReq: make(chan struct{}, 1),
			stop: make(chan struct{}), stopped: make(chan struct{})}
		p.entries[topic] = e
		e.elem = p.lru.PushFront(e)
		p.wg.Add(1)
		go p.create(e)
		p.opts.Metrics.size.Set(float64(len(p.entries)))
	} else {
		p.lru.MoveToFront(e.elem)
	}
	e.inflight += refs
	p.mu.Unlock()

	select {
	case <-e.ready:
	case <-ctx.Done():
		p.releaseN(e, refs)
		return nil, ctx.Err()
	}
	if e.err != nil {
		p.releaseN(e, refs)
		return nil, e.err
	}
	return e, nil
}

// releaseN drops n references taken by acquire that no send used.
func (p *Pool) releaseN(e *poolEntry, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.inflight -= n
	e.lastUsed = p.opts.Now()
	if e.retired && e.inflight == 0 {
		p.closeAsyncLocked(e)
	}
}

// create makes e's producer and starts its flusher; on failure the entry
// leaves the pool so the next request tries again.
func (p *Pool) create(e *poolEntry) {
	defer p.wg.Done()
	prod, err := p.client.CreateProducer(pulsar.ProducerOptions{
		Topic:                   e.topic,
		SendTimeout:             p.opts.SendTimeout,
		MaxPendingMessages:      p.opts.MaxPendingMessages,
		BatchingMaxPublishDelay: p.opts.BatchingMaxPublishDelay,
		BatchingMaxMessages:     p.opts.BatchingMaxMessages,
		BatchingMaxSize:         p.opts.BatchingMaxBytes,
	})
	p.mu.Lock()
	defer close(e.ready)
	defer p.mu.Unlock()
	if err != nil {
		p.opts.Metrics.createErr.Inc()
		p.log.Warn("create producer failed", "topic", e.topic, "err", err)
		e.err = err
		close(e.stopped)
		p.removeLocked(e)
		return
	}
	e.producer = prod
	e.lastUsed = p.opts.Now()
	p.wg.Add(1)
	go p.flusher(e)
	if !p.closed {
		p.evictOverflowLocked()
	}
	// Not prod.Name(): in pulsar-client-go v0.19 it races with reconnection.
	p.log.Debug("producer created", "topic", e.topic)
}

// flusher flushes e's batch whenever asked, one flush at a time. A flush
// waits for the broker's acknowledgement; requests that come meanwhile
// are served by the next flush.
func (p *Pool) flusher(e *poolEntry) {
	defer p.wg.Done()
	defer close(e.stopped)
	for {
		select {
		case <-e.stop:
			return
		case <-e.flushReq:
			ctx, cancel := context.WithTimeout(context.Background(), p.opts.SendTimeout)
			_ = e.producer.FlushWithCtx(ctx) // failures reach the messages' callbacks
			cancel()
		}
	}
}

// release drops a reference. A producer that reports itself closed, or
// whose send timed out, leaves the pool and the next request gets a fresh
// one: with pulsar-client-go v0.19 a producer that received SEND_ERROR
// NotAllowedError is dropped from its connection and would time out on
// every later send. A retired producer is closed once unreferenced.
func (p *Pool) release(e *poolEntry, sendErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.inflight--
	e.lastUsed = p.opts.Now()
	if brokenProducer(sendErr) && !e.retired && !p.closed {
		p.removeLocked(e)
		p.opts.Metrics.evictions.WithLabelValues("broken").Inc()
		p.log.Warn("producer recycled after a failed send", "topic", e.topic, "err", sendErr)
	}
	if e.retired && e.inflight == 0 {
		p.closeAsyncLocked(e)
	}
}

func brokenProducer(err error) bool {
	if err == nil {
		return false // before pe exists: errors.As makes it escape, one allocation per call
	}
	return brokenProducerErr(err)
}

func brokenProducerErr(err error) bool {
	var pe *pulsar.Error
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Result() == pulsar.ProducerClosed || pe.Result() == pulsar.TimeoutError
}

// removeLocked takes e out of the map; it is closed when unreferenced.
func (p *Pool) removeLocked(e *poolEntry) {
	if e.retired {
		return
	}
	e.retired = true
	delete(p.entries, e.topic)
	p.lru.Remove(e.elem)
	p.opts.Metrics.size.Set(float64(len(p.entries)))
}

// closeAsyncLocked stops e's flusher and closes its producer on another
// goroutine: Close waits for pending messages, which must not hold the
// pool's lock. The flusher stops first, so no flush races the close.
func (p *Pool) closeAsyncLocked(e *poolEntry) {
	if e.producer == nil || e.closing {
		return
	}
	e.closing = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		close(e.stop)
		<-e.stopped
		e.producer.Close()
	}()
}

// evictOverflowLocked retires least recently used idle producers while the
// pool is over MaxProducers. When every producer is busy the pool stays
// over the bound until some finish.
func (p *Pool) evictOverflowLocked() {
	for el := p.lru.Back(); el != nil && len(p.entries) > p.opts.MaxProducers; {
		e := el.Value.(*poolEntry)
		prev := el.Prev()
		if e.inflight == 0 && e.producer != nil {
			p.removeLocked(e)
			p.opts.Metrics.evictions.WithLabelValues("lru").Inc()
			p.closeAsyncLocked(e)
		}
		el = prev
	}
}

// EvictIdle closes producers unused for IdleTimeout. The reaper calls it;
// tests call it directly with a controlled clock.
func (p *Pool) EvictIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	now := p.opts.Now()
	for el := p.lru.Back(); el != nil; {
		e := el.Value.(*poolEntry)
		prev := el.Prev()
		if e.inflight == 0 && e.producer != nil && now.Sub(e.lastUsed) >= p.opts.IdleTimeout {
			p.removeLocked(e)
			p.opts.Metrics.evictions.WithLabelValues("idle").Inc()
			p.closeAsyncLocked(e)
			p.log.Debug("idle producer closed", "topic", e.topic)
		}
		el = prev
	}
}

// Close flushes and closes every producer, waiting for pending messages
// to be acknowledged (or fail), until ctx is done. It is idempotent. Call
// it when no more SendAsync calls can come (after the HTTP server stopped).
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return p.wait(ctx)
	}
	p.closed = true
	close(p.quit)
	entries := make([]*poolEntry, 0, len(p.entries))
	for _, e := range p.entries {
		entries = append(entries, e)
		e.retired, e.closing = true, true
	}
	p.entries = map[string]*poolEntry{}
	p.lru.Init()
	p.opts.Metrics.size.Set(0)
	p.mu.Unlock()

	for _, e := range entries {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			<-e.ready
			if e.producer == nil {
				return
			}
			close(e.stop)
			<-e.stopped
			if err := e.producer.FlushWithCtx(ctx); err != nil {
				p.log.Warn("flush on close failed", "topic", e.topic, "err", err)
			}
			e.producer.Close()
		}()
	}
	return p.wait(ctx)
}

func (p *Pool) wait(ctx context.Context) error { return group.WaitContext(ctx, p.wg.Wait) }
