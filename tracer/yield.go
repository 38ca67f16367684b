package tracer

import (
	"context"
	"time"
)

// yieldKey carries a sink write's yield function in its context.
type yieldKey struct{}

// withYield returns ctx carrying f, which a sink calls between the pieces
// of a long write (see Pipeline.yield).
func withYield(ctx context.Context, f func(time.Duration)) context.Context {
	return context.WithValue(ctx, yieldKey{}, f)
}

// yieldPoint calls the yield function ctx carries, if any.
func yieldPoint(ctx context.Context, took time.Duration) {
	if f, ok := ctx.Value(yieldKey{}).(func(time.Duration)); ok {
		f(took)
	}
}
