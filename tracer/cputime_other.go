//go:build !linux

package tracer

import "time"

// measureCPU returns the wall time of f: a per-thread CPU clock is only
// read on Linux. Wall time overstates the store's CPU when it waits.
func measureCPU(f func()) time.Duration {
	t0 := time.Now()
	f()
	return time.Since(t0)
}
