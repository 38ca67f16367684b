package tracer

import (
	"runtime"
	"sync"
	"time"
)

// governor decides when the pipeline may spend CPU on the sink (ADR 020,
// "The data plane first"). It holds a token bucket of CPU time that fills
// at budget CPU-seconds per second, up to budget x governorBurst; every
// sink write (direct or replay) spends the CPU it measured, so the balance
// can go negative (by at most one second of budget, and only while busy). While the data plane is busy and the balance is
// negative, the writer parks new batches in the outbox and the replayer
// waits. The data plane counts as busy while the events arriving would, at
// the sink's recent cost per event, need more than half the budget, and
// the process's CPU outside the sink plus what the sink would need to keep
// up comes to at least busyShare of GOMAXPROCS: then writing them all at
// once would compete with the data plane for the CPUs. Otherwise (few
// events, or CPUs to spare) the outbox drains at full speed.
//
// Deferral has limits: once the outbox holds more than maxBytes, or its
// oldest event is older than maxAge, the governor stops holding anything
// back and the sink runs at full speed, taking CPU from the data plane
// rather than letting the outbox fill up to its hard limit and lose events.
//
// Methods take the time as an argument so that tests drive it.
type governor struct {
	budget    float64 // CPU-seconds per second; <= 0: never defer
	maxBytes  int64
	maxAge    time.Duration
	busyShare float64 // (data-plane CPU + sink demand) / GOMAXPROCS that counts as busy; <= 0: any

	mu           sync.Mutex
	tokens       float64 // CPU-seconds; negative is debt
	last         time.Time
	costPerEvent float64 // CPU-seconds per event, moving average of sink writes
	rate         float64 // events per second arriving, moving average
	lastCount    uint64
	lastSample   time.Time
	busy         bool
	share        float64       // the process's CPU outside the sink / GOMAXPROCS, moving average
	lastProc     time.Duration // process CPU at the last sample; < 0: not read yet
	sinkCPU      time.Duration // CPU charged by sink writes, running total
	lastSink     time.Duration // sinkCPU at the last sample
	limited      bool          // a deferral limit is reached: full speed
	limitHits    uint64        // times limited went from false to true
}

// governorBurst is how many seconds of budget the bucket holds.
const governorBurst = 2.0

func newGovernor(budget float64, maxBytes int64, maxAge time.Duration, busyShare float64, now time.Time) *governor {
	g := &governor{budget: budget, maxBytes: maxBytes, maxAge: maxAge, busyShare: busyShare,
		last: now, lastSample: now, lastProc: -1}
	g.tokens = budget * governorBurst
	return g
}

func (g *governor) enabled() bool { return g.budget > 0 }

func (g *governor) refillLocked(now time.Time) {
	if dt := now.Sub(g.last).Seconds(); dt > 0 {
		g.tokens = min(g.tokens+g.budget*dt, g.budget*governorBurst)
		g.last = now
	}
}

// sample updates the arrival rate from the running count of recorded
// events, the data plane's CPU share from the process's CPU time (procCPU,
// a running total; negative when it cannot be read, which leaves the rate
// alone to decide), and the deferral limits from the outbox's size and lag.
func (g *governor) sample(now time.Time, recorded uint64, outboxBytes int64, lag, procCPU time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if dt := now.Sub(g.lastSample).Seconds(); dt >= 0.05 {
		// Both averages rise at once and fall smoothly: when load starts,
		// the sink is held back from the first sample instead of writing
		// at full speed while the averages catch up.
		r := float64(recorded-g.lastCount) / dt
		g.rate = max(r, 0.5*g.rate+0.5*r)
		g.lastCount, g.lastSample = recorded, now
		if procCPU >= 0 {
			if g.lastProc >= 0 {
				// The sink's own CPU does not count: a full-speed drain
				// must not make the process look busy and throttle itself.
				data := (procCPU - g.lastProc) - (g.sinkCPU - g.lastSink)
				s := max(data.Seconds(), 0) / dt / float64(runtime.GOMAXPROCS(0))
				g.share = max(s, 0.5*g.share+0.5*s)
			}
			g.lastProc, g.lastSink = procCPU, g.sinkCPU
		} else {
			g.lastProc = -1
		}
	}
	demand := g.rate * g.costPerEvent // CPUs the sink needs to keep up
	contended := g.busyShare <= 0 || g.lastProc < 0 ||
		g.share+demand/float64(runtime.GOMAXPROCS(0)) >= g.busyShare
	g.busy = contended && demand > g.budget/2
	// Without a budget nothing is deferred, so no deferral limit applies
	// (the outbox may still grow while the sink is down).
	limited := g.enabled() &&
		((g.maxBytes > 0 && outboxBytes > g.maxBytes) || (g.maxAge > 0 && lag > g.maxAge))
	if limited && !g.limited {
		g.limitHits++
	}
	g.limited = limited
}

// charge records a sink write of n events that took cpu.
func (g *governor) charge(now time.Time, cpu time.Duration, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refillLocked(now)
	g.sinkCPU += cpu
	// Debt is what the budget holds back while the data plane is busy. A
	// write while it is quiet (a full-speed drain) does not run up debt for
	// the next busy period, and no debt exceeds one second of budget, so the
	// sink never waits much longer than a second.
	floor := -g.budget
	if !g.busy {
		floor = 0
	}
	g.tokens = max(g.tokens-cpu.Seconds(), min(floor, g.tokens))
	if n > 0 {
		c := cpu.Seconds() / float64(n)
		if g.costPerEvent == 0 {
			g.costPerEvent = c
		} else {
			g.costPerEvent = 0.8*g.costPerEvent + 0.2*c
		}
	}
}

// hold reports how long the sink should wait before its next write; 0
// means go ahead.
func (g *governor) hold(now time.Time) time.Duration {
	if !g.enabled() {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refillLocked(now)
	if !g.busy || g.limited || g.tokens >= 0 {
		return 0
	}
	return time.Duration(-g.tokens / g.budget * float64(time.Second))
}

// throttling reports whether the governor is holding the sink back now.
func (g *governor) throttling(now time.Time) bool { return g.hold(now) > 0 }

// yieldFactor is how many times as long as its last piece a sink write
// should pause before the next one, so that the data plane keeps the CPUs
// it is using: 0 while the process outside the sink used less than
// activeShare of its CPUs (an idle process: full speed), otherwise
// 2*share/(1-share), at least 2. At a share of 0.5 that is 2 (the sink takes
// at most a third of a CPU), at 0.8 it is 8 (a ninth), at 0.9 it is 18. When
// the process's CPU time cannot be read, 2.
func (g *governor) yieldFactor() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lastProc < 0 {
		return 2
	}
	if g.share < activeShare {
		return 0
	}
	return max(2, 2*g.share/max(1-g.share, 0.01))
}

// activeShare is the share of the CPUs outside the sink below which the
// process counts as idle for yieldFactor.
const activeShare = 0.05

// atLimit reports whether a deferral limit is reached now, and how many
// times one was reached so far.
func (g *governor) atLimit() (bool, uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.limited, g.limitHits
}
