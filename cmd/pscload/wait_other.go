//go:build !linux

package main

import "time"

// sleepPrecise is time.Sleep where nanosleep is not used.
func sleepPrecise(d time.Duration) { time.Sleep(d) }
