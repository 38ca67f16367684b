//go:build linux

package tracer

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// processCPU is the CPU time (user and system) the process has used so
// far, or -1 when it cannot be read.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU runs f on a locked OS thread and returns the CPU time that
// thread spent in it. The SQLite driver runs in the calling goroutine, so
// this is the store's whole cost; for Elasticsearch it is the encoding and
// decoding done by the caller, not the HTTP transport's goroutines. Where
// the thread clock cannot be read, the wall time is returned.
func measureCPU(f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var t0, t1 unix.Timespec
	w0 := time.Now()
	e0 := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t0)
	f()
	e1 := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t1)
	if e0 != nil || e1 != nil {
		return time.Since(w0)
	}
	return time.Duration(t1.Nano() - t0.Nano())
}
