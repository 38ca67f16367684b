package proxy

import (
	"context"
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
type batcher struct {
	rdb       redisPipeliner
	oldServer atomic.Bool // Redis before 7.0: no SET NX GET (see setNXGet)

	mu       sync.Mutex
	queue    []*batchCall
	flushing bool
}

// maxBatch bounds one pipeline; the rest waits for the next round trip.
const maxBatch = 512

type batchCall struct {
	ctx   context.Context
	queue func(redis.Pipeliner)
	done  chan error
}

func newBatcher(rdb redisPipeliner) *batcher { return &batcher{rdb: rdb} }

// do queues q's commands and returns when they have been sent and
// answered (read each command's own result then), or when ctx ends first:
// the commands may still run.
func (b *batcher) do(ctx context.Context, q func(redis.Pipeliner)) error {
	c := &batchCall{ctx: ctx, queue: q, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	start := !b.flushing
	b.flushing = true
	b.mu.Unlock()
	if start {
		go b.flush()
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher) flush() {
	for {
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
		b.mu.Unlock()
		b.send(calls)
	}
}

// send runs calls as one pipeline. The round trip is bounded by the
// latest deadline among them; calls whose context already ended are
// skipped.
func (b *batcher) send(calls []*batchCall) {
	ctx := context.Background()
	live := calls[:0]
	for _, c := range calls {
		if err := c.ctx.Err(); err != nil {
			c.done <- err
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	var cancel context.CancelFunc = func() {}
	if dl, ok := latestDeadline(live); ok {
		ctx, cancel = context.WithDeadline(ctx, dl)
	}
	defer cancel()
	p := b.rdb.Pipeline()
	for _, c := range live {
		c.queue(p)
	}
	// Each command keeps its own answer or error (redis.Nil, NOSCRIPT, a
	// lost connection): callers read their own commands.
	_, _ = p.Exec(ctx)
	for _, c := range live {
		c.done <- nil
	}
}

func latestDeadline(calls []*batchCall) (dl time.Time, ok bool) {
	for _, c := range calls {
		d, has := c.ctx.Deadline()
		if !has {
			return time.Time{}, false
		}
		if !ok || d.After(dl) {
			dl, ok = d, true
		}
	}
	return dl, ok
}
