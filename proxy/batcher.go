package proxy

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher is group commit for Redis: the calls of concurrent requests
// share round trips. A call queues its command; if no flush is running,
// one starts on its own goroutine and sends everything queued as one
// pipeline, then again whatever queued meanwhile, and ends when the queue
// is empty. A lone call therefore pays one round trip, and under load each
// round trip carries every call that arrived during the previous one (the
// producer pool batches sends to the broker the same way). No goroutine
// outlives the calls it serves, so there is nothing to close.
//
// The two commands on every keyed message's path (Begin's SET NX GET and
// Complete's SET) are typed calls: no closure, no context and no channel
// of their own (calls are pooled), and Complete's answer goes to a
// callback run by the flush instead of waking a waiting goroutine, so the
// request goroutine sleeps once for the broker's ack and the result's
// record together (issue 12's profile: per-call contexts, closures,
// channels and the extra wake-up were a third of the keyed overhead).
// Rarer commands (scripts) queue a function that adds them to the pipeline.
type batcher struct {
	rdb       redisPipeliner
	ttlArg    any         // the record TTL in milliseconds, boxed once
	oldServer atomic.Bool // Redis before 7.0: no SET NX GET (see setNXGet)

	mu       sync.Mutex
	queue    []*batchCall
	flushing bool
}

// maxBatch bounds one pipeline; the rest waits for the next round trip.
const maxBatch = 512

type callKind uint8

const (
	callQueue    callKind = iota // queue adds the commands
	callSetNXGet                 // SET key val NX GET PX ttl
	callSet                      // SET key val PX ttl
)

// batchCall is one queued call. A call is either waited for (done) or
// answered through then, never both.
type batchCall struct {
	kind     callKind
	key, val string
	queue    func(redis.Pipeliner)
	// deadline: a call not sent by then is answered
	// context.DeadlineExceeded; the round trip is bounded by the latest
	// deadline of its calls. ctx (waited calls): one that has ended is not
	// sent.
	deadline time.Time
	ctx      context.Context

	// The answer: str and err of a typed call's command (err is the
	// transport error for a callQueue call, whose commands keep their own).
	str string
	err error
	cmd *redis.StatusCmd
	// args backs the typed command's arguments: the pooled call's own
	// array, so building the command allocates no argument slice.
	args [7]any

	done  chan struct{}   // receives once when the answer is in (waited calls)
	then  func(err error) // answered calls: run once, by the flush or at the deadline; must not block
	timer *time.Timer     // the waiter's timeout, reused with the call

	// answered calls: answered is set by whoever answers (the flush, or
	// expiry at the deadline when a round trip hangs, say while go-redis
	// dials a Redis that does not answer).
	answered atomic.Bool
	expiry   *time.Timer
}

var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	c := &batchCall{done: make(chan struct{}, 1), timer: t}
	c.expiry = time.AfterFunc(time.Hour, c.expire)
	c.expiry.Stop()
	return c
}}

// expire answers an answered call whose deadline passed before its round
// trip ended. The call is not reused afterwards (the flush may hold it).
func (c *batchCall) expire() {
	if c.answered.CompareAndSwap(false, true) {
		c.then(context.DeadlineExceeded)
	}
}

func getCall() *batchCall { return callPool.Get().(*batchCall) }

// putCall returns an answered call to the pool; a call whose waiter gave
// up is left to the garbage collector instead (the flush may still hold it).
func putCall(c *batchCall) {
	c.kind, c.key, c.val, c.queue = 0, "", "", nil
	c.deadline, c.ctx, c.str, c.err, c.cmd, c.then = time.Time{}, nil, "", nil, nil, nil
	c.args = [7]any{}
	c.answered.Store(false)
	callPool.Put(c)
}

func newBatcher(rdb redisPipeliner, ttl time.Duration) *batcher {
	return &batcher{rdb: rdb, ttlArg: ttl.Milliseconds()}
}

// answerLater queues c, whose answer goes to c.then: by the flush, or
// with context.DeadlineExceeded at c.deadline if that comes first.
func (b *batcher) answerLater(c *batchCall) {
	c.expiry.Reset(time.Until(c.deadline))
	b.enqueue(c)
}

func (b *batcher) enqueue(c *batchCall) {
	b.mu.Lock()
	b.queue = append(b.queue, c)
	start := !b.flushing
	b.flushing = true
	b.mu.Unlock()
	if start {
		go b.flush()
	}
}

// wait queues c and returns when it has been answered (read c's answer
// then and return it to the pool with putCall), or when ctx ends or c's
// deadline passes first: the command may still run, and c must not be
// reused.
func (b *batcher) wait(ctx context.Context, c *batchCall) error {
	c.ctx = ctx
	b.enqueue(c)
	c.timer.Reset(time.Until(c.deadline))
	select {
	case <-c.done:
		c.timer.Stop()
		return nil
	case <-c.timer.C:
		return context.DeadlineExceeded
	case <-ctx.Done():
		c.timer.Stop()
		return ctx.Err()
	}
}

// do queues q's commands and returns when they have been sent and
// answered (read each command's own result then), or when ctx ends or
// deadline passes first: the commands may still run.
func (b *batcher) do(ctx context.Context, deadline time.Time, q func(redis.Pipeliner)) error {
	c := getCall()
	c.kind, c.queue, c.deadline = callQueue, q, deadline
	if err := b.wait(ctx, c); err != nil {
		return err
	}
	err := c.err
	putCall(c)
	return err
}

func (b *batcher) flush() {
	for {
		// Yield once before taking the queue: goroutines that are already
		// runnable (requests about to queue their claims, broker acks about
		// to queue their records) run first and join this round trip. With
		// nothing else runnable Gosched returns at once, so a lone call
		// pays nothing. Under load it raised the calls per round trip from
		// 9-11 to 16-18; a keyed request's CPU (sidecar plus redis-server)
		// was lower in 7 of 10 paired runs, by a median of 4 us (issue 12,
		// ADR 030).
		runtime.Gosched()
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		if n == 0 {
			b.flushing = false
			b.mu.Unlock()
			return
		}
		calls := make([]*batchCall, n)
		copy(calls, b.queue)
		b.queue = append(b.queue[:0], b.queue[n:]...)
		clear(b.queue[len(b.queue):n]) // no stale pointers behind the slice
		b.mu.Unlock()
		b.send(calls)
	}
}

// send runs calls as one pipeline. The round trip is bounded by the
// latest deadline among them; calls whose deadline passed or whose waiter
// left are answered at once without being sent.
func (b *batcher) send(calls []*batchCall) {
	now := time.Now()
	live := calls[:0]
	var latest time.Time
	for _, c := range calls {
		err := context.DeadlineExceeded
		if c.deadline.After(now) {
			err = nil
			if c.ctx != nil {
				err = c.ctx.Err()
			}
		}
		if err != nil {
			c.err = err
			b.answer(c)
			continue
		}
		if c.deadline.After(latest) {
			latest = c.deadline
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), latest)
	defer cancel()
	p := b.rdb.Pipeline()
	for _, c := range live {
		switch c.kind {
		case callSetNXGet:
			c.args = [7]any{"set", c.key, c.val, "nx", "get", "px", b.ttlArg}
			c.cmd = redis.NewStatusCmd(ctx, c.args[:7]...)
			_ = p.Process(ctx, c.cmd)
		case callSet:
			c.args = [7]any{"set", c.key, c.val, "px", b.ttlArg}
			c.cmd = redis.NewStatusCmd(ctx, c.args[:5]...)
			_ = p.Process(ctx, c.cmd)
		default:
			c.queue(p)
		}
	}
	// Each command keeps its own answer or error (redis.Nil, NOSCRIPT, a
	// lost connection): callers read their own commands.
	_, _ = p.Exec(ctx)
	for _, c := range live {
		if c.cmd != nil {
			c.str, c.err = c.cmd.Result()
			c.cmd = nil
		}
		b.answer(c)
	}
}

// answer hands c's answer over: to its callback (then the call goes back
// to the pool) or to its waiter.
func (b *batcher) answer(c *batchCall) {
	if c.then != nil {
		if !c.answered.CompareAndSwap(false, true) {
			return // expired: answered already, and not ours to reuse
		}
		then, err := c.then, c.err
		if c.expiry.Stop() {
			putCall(c) // the expiry will not run: nobody else holds c
		}
		then(err)
		return
	}
	c.done <- struct{}{}
}
