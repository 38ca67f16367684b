package main

import (
	"context"
	"testing"
	"time"
)

// TestWaitUntil: never returns before its instant (through both the timer
// and the precise stretch), and gives up as soon as the context ends.
func TestWaitUntil(t *testing.T) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for _, d := range []time.Duration{-time.Millisecond, 0, 300 * time.Microsecond, 5 * time.Millisecond} {
		at := time.Now().Add(d)
		if !waitUntil(context.Background(), timer, at) {
			t.Fatalf("%v: gave up without a cancelled context", d)
		}
		if now := time.Now(); now.Before(at) {
			t.Fatalf("%v: returned %v before its instant", d, at.Sub(now))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	start := time.Now()
	if waitUntil(ctx, timer, start.Add(time.Minute)) {
		t.Fatal("waited out a minute although the context ended")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("gave up only after %v", took)
	}
}
