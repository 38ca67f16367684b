package main

import (
	"syscall"
	"time"
)

// sleepPrecise sleeps d in nanosleep(2): the goroutine's thread blocks in
// the kernel (the runtime hands its P to other goroutines meanwhile) and
// wakes within the kernel's timer slack, not at the next millisecond. An
// interrupted sleep returns early; callers loop on the clock.
func sleepPrecise(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	_ = syscall.Nanosleep(&ts, nil)
}
