//go:build unix

package delay

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time used by the process so far (all threads, GC
// included). Benchmarks report it beside wall time because the machines they
// run on are shared and wall time depends on the neighbours' load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
