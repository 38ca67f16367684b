package durable

import (
	"sync"
	"time"
)

// State is a circuit breaker's state. The numeric values are exported as
// the psc_cluster_state metric.
type State int

// Breaker states.
const (
	Closed   State = iota // traffic flows
	HalfOpen              // a few trial messages (and probes) test the cluster
	Open                  // no traffic; probes only
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "unknown"
}

// BreakerOptions tune every cluster's circuit breaker. Zero values take the
// defaults named per field. See docs/adr/050-durability.md for the reasoning.
type BreakerOptions struct {
	// FailureThreshold is how many retriable failures in a row (messages or
	// idle probes) open a closed breaker (default 3).
	FailureThreshold int
	// MinOpen is the shortest time a breaker stays open (default 1s). When a
	// breaker opens again less than StableAfter after it closed, the time
	// doubles, up to MaxOpen: a flapping cluster is tried less and less often.
	MinOpen time.Duration
	// MaxOpen caps the doubled open time (default 30s).
	MaxOpen time.Duration
	// StableAfter is how long a breaker must stay closed before a new trip
	// starts again from MinOpen (default 30s).
	StableAfter time.Duration
	// RecoverProbes is how many good probes in a row, the last one after
	// the open time, move an open breaker to half-open (default 3).
	RecoverProbes int
	// HalfOpenTrials is how many trial messages may be in flight while
	// half-open, and how many successes (trials or probes) close the
	// breaker (default 3). Any failure opens it again.
	HalfOpenTrials int
}

func (o BreakerOptions) withDefaults() BreakerOptions {
	if o.FailureThreshold <= 0 {
		o.FailureThreshold = 3
	}
	if o.MinOpen <= 0 {
		o.MinOpen = time.Second
	}
	if o.MaxOpen < o.MinOpen {
		o.MaxOpen = max(30*time.Second, o.MinOpen)
	}
	if o.StableAfter <= 0 {
		o.StableAfter = 30 * time.Second
	}
	if o.RecoverProbes <= 0 {
		o.RecoverProbes = 3
	}
	if o.HalfOpenTrials <= 0 {
		o.HalfOpenTrials = 3
	}
	return o
}

// ticket is a permission to send one message to a cluster. Outcomes of
// tickets issued before the breaker's last transition are ignored: they
// describe the cluster as it was.
type ticket struct {
	gen   uint64
	trial bool
}

// breaker is one cluster's circuit breaker: a pure state machine. Time is
// passed in, so tests drive it with any clock. Safe for concurrent use.
//
//	closed    --FailureThreshold failures in a row-->                  open
//	open      --RecoverProbes good probes, open for at least openFor--> half-open
//	half-open --HalfOpenTrials successes (trials or probes)-->         closed
//	half-open --any failure-->                                         open
type breaker struct {
	opts     BreakerOptions
	onChange func(from, to State) // called without the lock held, in transition order

	mu       sync.Mutex
	state    State
	gen      uint64
	failures int       // consecutive, while closed
	openedAt time.Time // when it last opened
	openFor  time.Duration
	closedAt time.Time // when it last closed; zero if never opened
	probesOK int       // consecutive good probes while open
	trials   int       // trial messages in flight while half-open
	trialsOK int       // successes while half-open
	activity time.Time // last outcome of any kind (drives idle probes)
	changes  []State   // transitions not yet reported
	notifyMu sync.Mutex
}

func newBreaker(opts BreakerOptions, now time.Time, onChange func(from, to State)) *breaker {
	return &breaker{opts: opts.withDefaults(), onChange: onChange, activity: now}
}

// State returns the current state.
func (b *breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// available reports, without taking anything, whether acquire would succeed.
func (b *breaker) available() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == Closed || (b.state == HalfOpen && b.trials < b.opts.HalfOpenTrials)
}

// acquire asks to send one message. While half-open it hands out at most
// HalfOpenTrials trial tickets at a time; while open, none.
func (b *breaker) acquire() (ticket, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case Closed:
		return ticket{gen: b.gen}, true
	case HalfOpen:
		if b.trials < b.opts.HalfOpenTrials {
			b.trials++
			return ticket{gen: b.gen, trial: true}, true
		}
	}
	return ticket{}, false
}

// acquireClosed is acquire without trials: only a closed breaker says yes.
func (b *breaker) acquireClosed() (ticket, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Closed {
		return ticket{gen: b.gen}, true
	}
	return ticket{}, false
}

// success records that the cluster acknowledged a message.
func (b *breaker) success(t ticket, now time.Time) {
	b.mu.Lock()
	b.activity = now
	if t.gen == b.gen {
		switch b.state {
		case Closed:
			b.failures = 0
		case HalfOpen:
			b.trials--
			b.trialSucceededLocked(now)
		}
	}
	b.mu.Unlock()
	b.report()
}

// failure records a retriable failure of a message sent with t.
func (b *breaker) failure(t ticket, now time.Time) {
	b.mu.Lock()
	b.activity = now
	if t.gen == b.gen {
		switch b.state {
		case Closed:
			b.failures++
			if b.failures >= b.opts.FailureThreshold {
				b.openLocked(now)
			}
		case HalfOpen:
			b.openLocked(now)
		}
	}
	b.mu.Unlock()
	b.report()
}

// release returns t without an outcome that says anything about the
// cluster (the message itself was refused).
func (b *breaker) release(t ticket, now time.Time) {
	b.mu.Lock()
	b.activity = now
	if t.trial && t.gen == b.gen && b.state == HalfOpen {
		b.trials--
	}
	b.mu.Unlock()
}

// probe records a health probe's outcome.
func (b *breaker) probe(ok bool, now time.Time) {
	b.mu.Lock()
	b.activity = now
	switch b.state {
	case Closed:
		if ok {
			b.failures = 0
		} else if b.failures++; b.failures >= b.opts.FailureThreshold {
			b.openLocked(now)
		}
	case Open:
		if !ok {
			b.probesOK = 0
			break
		}
		b.probesOK++
		if b.probesOK >= b.opts.RecoverProbes && now.Sub(b.openedAt) >= b.openFor {
			b.setLocked(HalfOpen)
			b.trials, b.trialsOK = 0, 0
		}
	case HalfOpen:
		if ok {
			b.trialSucceededLocked(now)
		} else {
			b.openLocked(now)
		}
	}
	b.mu.Unlock()
	b.report()
}

// wantProbe reports whether a probe is due: always while open or half-open,
// and while closed when nothing was heard from the cluster for idle.
func (b *breaker) wantProbe(now time.Time, idle time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state != Closed || (idle > 0 && now.Sub(b.activity) >= idle)
}

func (b *breaker) trialSucceededLocked(now time.Time) {
	b.trialsOK++
	if b.trialsOK >= b.opts.HalfOpenTrials {
		b.setLocked(Closed)
		b.failures = 0
		b.closedAt = now
	}
}

func (b *breaker) openLocked(now time.Time) {
	// A failed recovery, or a trip soon after closing, is a flap: wait
	// twice as long before trying again.
	flapping := b.state == HalfOpen || (!b.closedAt.IsZero() && now.Sub(b.closedAt) < b.opts.StableAfter)
	if flapping && b.openFor > 0 {
		b.openFor = min(2*b.openFor, b.opts.MaxOpen)
	} else {
		b.openFor = b.opts.MinOpen
	}
	b.setLocked(Open)
	b.openedAt = now
	b.probesOK = 0
	b.trials, b.trialsOK = 0, 0
}

func (b *breaker) setLocked(to State) {
	if b.state == to {
		return
	}
	b.changes = append(b.changes, b.state, to)
	b.state = to
	b.gen++
}

// report calls onChange for the transitions made since the last call, in
// order, without holding mu (notifyMu keeps reports from interleaving).
func (b *breaker) report() {
	b.notifyMu.Lock()
	defer b.notifyMu.Unlock()
	b.mu.Lock()
	ch := b.changes
	b.changes = nil
	b.mu.Unlock()
	if b.onChange == nil {
		return
	}
	for i := 0; i+1 < len(ch); i += 2 {
		b.onChange(ch[i], ch[i+1])
	}
}
