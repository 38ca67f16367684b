package main

import (
	"context"
	"time"
)

// preciseWait is the stretch before an instant that is slept with
// sleepPrecise instead of a Go timer. On Linux the Go runtime waits for
// timers in epoll_pwait, whose timeout is whole milliseconds: a timer due
// in 50 us fired ~1.05 ms late on the 2-core VM of docs/benchmarks.md
// (p50 of 500), as late as the 1 ms --max-lag itself, so most runs there
// were flagged as not keeping their schedule. nanosleep(2) on a thread of
// its own woke 0.07-0.1 ms late (p50) in the same test.
const preciseWait = 2 * time.Millisecond

// waitUntil returns true at instant t, or false as soon as ctx ends first:
// a timer for all but the last preciseWait, which is slept precisely
// (sleepPrecise). timer is the caller's, reused between calls.
func waitUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	for {
		d := time.Until(t)
		switch {
		case ctx.Err() != nil:
			return false
		case d <= 0:
			return true
		case d > preciseWait:
			timer.Reset(d - preciseWait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return false
			}
		default:
			sleepPrecise(d)
		}
	}
}
