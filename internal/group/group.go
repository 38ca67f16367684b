// Package group is the sidecar's lifecycle plumbing, written once: a group
// of goroutines that refuses new work once closing and is waited for under
// a context, waiting for anything under a context, and a stack of stop
// hooks drained in reverse under one time cap.
package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Group runs goroutines that Wait waits for. The zero Group is ready.
type Group struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs f on a new goroutine that Wait waits for, and reports true; once
// Close or Wait has begun it runs nothing and reports false (a WaitGroup
// may not grow while it is waited for).
func (g *Group) Go(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Go(f)
	return true
}

// Close refuses new work; what runs goes on. Idempotent.
func (g *Group) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// Wait closes the group and waits until its goroutines have returned, or
// ctx ends (ctx's error; the goroutines still run). Wait may be called
// again, and from several goroutines.
func (g *Group) Wait(ctx context.Context) error {
	g.Close()
	return WaitContext(ctx, g.wg.Wait)
}

// WaitContext runs wait and returns when it has, or with ctx's error when
// ctx ends first (wait then still runs to its end on its goroutine).
func WaitContext(ctx context.Context, wait func()) error {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stops is a stack of stop hooks: components push theirs as they start,
// and Drain runs them in reverse, so each stops before what it was built
// on. The zero Stops is ready; it is not safe for concurrent Push.
type Stops struct {
	hooks []hook
}

type hook struct {
	name string
	stop func(ctx context.Context) error
}

// Push adds a hook; name is how the log and the error name the step.
func (s *Stops) Push(name string, stop func(ctx context.Context) error) {
	s.hooks = append(s.hooks, hook{name, stop})
}

// Len is the number of hooks not drained yet.
func (s *Stops) Len() int { return len(s.hooks) }

// Drain runs every hook, last pushed first, under ctx capped at limit
// (when > 0). A hook that fails or runs out of time is logged and the
// rest still run; Drain returns every failure, each named by its hook.
// The stack is empty afterwards.
func (s *Stops) Drain(ctx context.Context, limit time.Duration, log *slog.Logger) error {
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	if log == nil {
		log = slog.Default()
	}
	var errs []error
	for i := len(s.hooks) - 1; i >= 0; i-- {
		h := s.hooks[i]
		if err := h.stop(ctx); err != nil {
			log.Warn("shutdown step failed", "step", h.name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", h.name, err))
		}
	}
	s.hooks = nil
	return errors.Join(errs...)
}
