//go:build !linux

package tracer

import "time"

// processCPU returns -1: the process's CPU time is only read on Linux, so
// elsewhere the arrival rate alone decides when the data plane is busy.
func processCPU() time.Duration { return -1 }

// measureCPU returns the wall time of f: a per-thread CPU clock is only
// read on Linux. Wall time overstates the store's CPU when it waits.
func measureCPU(f func()) time.Duration {
	t0 := time.Now()
	f()
	return time.Since(t0)
}
