package proxy

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// ErrPoolClosed is returned by Pool.SendAsync after Close.
var ErrPoolClosed = errors.New("proxy: producer pool closed")

// PoolOptions configure a Pool. Zero values take the defaults noted.
type PoolOptions struct {
	MaxProducers            int           // 1000
	IdleTimeout             time.Duration // 10m
	BatchingMaxPublishDelay time.Duration // 1ms
	BatchingMaxMessages     uint          // 1000
	BatchingMaxBytes        uint          // 128 KiB
	MaxPendingMessages      int           // 10000
	// SendTimeout bounds how long the client keeps an unacknowledged
	// message before it reports failure; the produce path sets it to the
	// request deadline so every callback comes by then. 10s.
	SendTimeout time.Duration
	Metrics     *Metrics
	Logger      *slog.Logger     // slog.Default() when nil
	Now         func() time.Time // time.Now when nil; drives idle eviction
}

// Pool keeps one producer per topic. Producers are created on first use,
// closed after IdleTimeout without use, and at most MaxProducers stay open:
// beyond that the least recently used idle one is closed. A producer with
// messages in flight is never closed by the pool until Close.
//
// Batching is on: concurrent single-message requests to one topic share a
// broker round trip, at the cost of waiting up to BatchingMaxPublishDelay.
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
	wg   sync.WaitGroup // creators, closers and the reaper
}

type poolEntry struct {
	topic    string
	ready    chan struct{} // closed once producer or err is set
	producer pulsar.Producer
	err      error
	inflight int       // guarded by Pool.mu
	lastUsed time.Time // guarded by Pool.mu
	elem     *list.Element
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
		opts.BatchingMaxPublishDelay = time.Millisecond
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
func (p *Pool) SendAsync(ctx context.Context, topic string, msg *pulsar.ProducerMessage, done func(pulsar.MessageID, error)) {
	e, err := p.acquire(ctx, topic)
	if err != nil {
		done(nil, err)
		return
	}
	e.producer.SendAsync(ctx, msg, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
		p.release(e, err)
		done(id, err)
	})
}

// acquire returns topic's ready producer with its in-flight count raised.
func (p *Pool) acquire(ctx context.Context, topic string) (*poolEntry, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	e := p.entries[topic]
	if e == nil {
		e = &poolEntry{topic: topic, ready: make(chan struct{})}
		p.entries[topic] = e
		e.elem = p.lru.PushFront(e)
		p.wg.Add(1)
		go p.create(e)
		p.opts.Metrics.setPoolSize(len(p.entries))
	} else {
		p.lru.MoveToFront(e.elem)
	}
	e.inflight++
	p.mu.Unlock()

	select {
	case <-e.ready:
	case <-ctx.Done():
		p.release(e, nil)
		return nil, ctx.Err()
	}
	if e.err != nil {
		p.release(e, nil)
		return nil, e.err
	}
	return e, nil
}

// create makes e's producer; on failure the entry leaves the pool so the
// next request tries again.
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
	if err != nil {
		p.opts.Metrics.addCreateError()
		p.log.Warn("create producer failed", "topic", e.topic, "err", err)
		e.err = err
		p.removeLocked(e)
		p.mu.Unlock()
		close(e.ready)
		return
	}
	e.producer = prod
	e.lastUsed = p.opts.Now()
	closed := p.closed
	p.evictOverflowLocked()
	p.mu.Unlock()
	close(e.ready)
	if closed {
		// Close ran while we were creating; it waits on ready and closes us.
		return
	}
	// Not prod.Name(): in pulsar-client-go v0.19 it races with reconnection.
	p.log.Debug("producer created", "topic", e.topic)
}

// release lowers e's in-flight count. A producer that reports itself
// closed, or whose send timed out, leaves the pool and the next request
// gets a fresh one: with pulsar-client-go v0.19 a producer that received
// SEND_ERROR NotAllowedError is dropped from its connection and would time
// out on every later send.
func (p *Pool) release(e *poolEntry, sendErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.inflight--
	e.lastUsed = p.opts.Now()
	if brokenProducer(sendErr) && p.entries[e.topic] == e && !p.closed {
		p.removeLocked(e)
		p.opts.Metrics.addEviction("broken")
		p.log.Warn("producer recycled after a failed send", "topic", e.topic, "err", sendErr)
		p.closeAsyncLocked(e)
	}
}

func brokenProducer(err error) bool {
	var pe *pulsar.Error
	if err == nil || !errors.As(err, &pe) {
		return false
	}
	return pe.Result() == pulsar.ProducerClosed || pe.Result() == pulsar.TimeoutError
}

func (p *Pool) removeLocked(e *poolEntry) {
	if p.entries[e.topic] == e {
		delete(p.entries, e.topic)
		p.lru.Remove(e.elem)
		p.opts.Metrics.setPoolSize(len(p.entries))
	}
}

// closeAsyncLocked closes e's producer on another goroutine: Close waits
// for pending messages, which must not hold the pool's lock.
func (p *Pool) closeAsyncLocked(e *poolEntry) {
	if e.producer == nil {
		return
	}
	prod := e.producer
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		prod.Close()
	}()
}

// evictOverflowLocked closes least recently used idle producers while the
// pool is over MaxProducers. When every producer is busy the pool stays
// over the bound until some finish.
func (p *Pool) evictOverflowLocked() {
	for el := p.lru.Back(); el != nil && len(p.entries) > p.opts.MaxProducers; {
		e := el.Value.(*poolEntry)
		prev := el.Prev()
		if e.inflight == 0 && e.producer != nil {
			p.removeLocked(e)
			p.opts.Metrics.addEviction("lru")
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
			p.opts.Metrics.addEviction("idle")
			p.closeAsyncLocked(e)
			p.log.Debug("idle producer closed", "topic", e.topic)
		}
		el = prev
	}
}

// Close flushes and closes every producer, waiting for pending messages
// to be acknowledged (or fail), until ctx is done. It is idempotent.
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
	}
	p.entries = map[string]*poolEntry{}
	p.lru.Init()
	p.opts.Metrics.setPoolSize(0)
	p.mu.Unlock()

	for _, e := range entries {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			<-e.ready
			if e.producer != nil {
				if err := e.producer.FlushWithCtx(ctx); err != nil {
					p.log.Warn("flush on close failed", "topic", e.topic, "err", err)
				}
				e.producer.Close()
			}
		}()
	}
	return p.wait(ctx)
}

func (p *Pool) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
