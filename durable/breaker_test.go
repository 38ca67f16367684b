package durable

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// breakerOpts are the defaults spelled out, so the tests read on their own.
var breakerOpts = BreakerOptions{
	FailureThreshold: 3, MinOpen: time.Second, MaxOpen: 8 * time.Second,
	StableAfter: 30 * time.Second, RecoverProbes: 3, HalfOpenTrials: 2,
}

// step is one thing that happens to a breaker at a time (seconds after t0).
type step struct {
	at   float64
	what string // fail, ok, probe-ok, probe-fail, acquire, acquire-none, release
	want State
}

func runSteps(t *testing.T, steps []step) []State {
	t.Helper()
	var seen []State
	b := newBreaker(breakerOpts, t0, func(_, to State) { seen = append(seen, to) })
	var tickets []ticket
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	pop := func() ticket {
		if len(tickets) == 0 {
			return ticket{gen: b.gen} // a ticket taken just now
		}
		tk := tickets[0]
		tickets = tickets[1:]
		return tk
	}
	for i, s := range steps {
		switch s.what {
		case "fail":
			b.failure(pop(), at(s.at))
		case "ok":
			b.success(pop(), at(s.at))
		case "release":
			b.release(pop(), at(s.at))
		case "probe-ok":
			b.probe(true, at(s.at))
		case "probe-fail":
			b.probe(false, at(s.at))
		case "acquire":
			tk, ok := b.acquire()
			require.True(t, ok, "step %d: acquire refused in %s", i, b.State())
			tickets = append(tickets, tk)
		case "acquire-none":
			_, ok := b.acquire()
			require.False(t, ok, "step %d: acquire granted in %s", i, b.State())
		default:
			t.Fatalf("step %d: unknown %q", i, s.what)
		}
		require.Equal(t, s.want, b.State(), "step %d (%s at %.1fs)", i, s.what, s.at)
	}
	return seen
}

func TestBreakerTransitions(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		seen  []State
	}{
		{"failures below the threshold do not open", []step{
			{0, "fail", Closed}, {0.1, "fail", Closed}, {0.2, "ok", Closed},
			{0.3, "fail", Closed}, {0.4, "fail", Closed},
		}, nil},
		{"three failures in a row open", []step{
			{0, "fail", Closed}, {0.1, "fail", Closed}, {0.2, "fail", Open}, {0.3, "acquire-none", Open},
		}, []State{Open}},
		{"refused messages say nothing about the cluster", []step{
			{0, "fail", Closed}, {0.1, "release", Closed}, {0.2, "fail", Closed}, {0.3, "fail", Open},
		}, []State{Open}},
		{"good probes before MinOpen do not half-open", []step{
			{0, "fail", Closed}, {0, "fail", Closed}, {0, "fail", Open},
			{0.2, "probe-ok", Open}, {0.4, "probe-ok", Open}, {0.6, "probe-ok", Open}, {0.8, "probe-ok", Open},
			{1.0, "probe-ok", HalfOpen},
		}, []State{Open, HalfOpen}},
		{"a failed probe restarts the count", []step{
			{0, "fail", Closed}, {0, "fail", Closed}, {0, "fail", Open},
			{1.0, "probe-ok", Open}, {1.1, "probe-ok", Open}, {1.2, "probe-fail", Open},
			{1.3, "probe-ok", Open}, {1.4, "probe-ok", Open}, {1.5, "probe-ok", HalfOpen},
		}, []State{Open, HalfOpen}},
		{"half-open admits a bounded number of trials; their successes close", []step{
			{0, "fail", Closed}, {0, "fail", Closed}, {0, "fail", Open},
			{1, "probe-ok", Open}, {1.1, "probe-ok", Open}, {1.2, "probe-ok", HalfOpen},
			{1.3, "acquire", HalfOpen}, {1.3, "acquire", HalfOpen}, {1.3, "acquire-none", HalfOpen},
			{1.4, "ok", HalfOpen}, {1.4, "ok", Closed},
		}, []State{Open, HalfOpen, Closed}},
		{"probes alone close an idle half-open breaker", []step{
			{0, "fail", Closed}, {0, "fail", Closed}, {0, "fail", Open},
			{1, "probe-ok", Open}, {1.1, "probe-ok", Open}, {1.2, "probe-ok", HalfOpen},
			{1.3, "probe-ok", HalfOpen}, {1.4, "probe-ok", Closed},
		}, []State{Open, HalfOpen, Closed}},
		{"a failed trial opens again", []step{
			{0, "fail", Closed}, {0, "fail", Closed}, {0, "fail", Open},
			{1, "probe-ok", Open}, {1.1, "probe-ok", Open}, {1.2, "probe-ok", HalfOpen},
			{1.3, "acquire", HalfOpen}, {1.4, "fail", Open},
		}, []State{Open, HalfOpen, Open}},
		{"outcomes of tickets from an earlier state are ignored", []step{
			{0, "acquire", Closed}, {0, "acquire", Closed}, {0, "acquire", Closed}, {0, "acquire", Closed},
			{0.1, "fail", Closed}, {0.1, "fail", Closed}, {0.1, "fail", Open},
			{1, "probe-ok", Open}, {1.1, "probe-ok", Open}, {1.2, "probe-ok", HalfOpen},
			{1.3, "ok", HalfOpen}, // the fourth closed-state ticket: not a trial
			{1.4, "probe-ok", HalfOpen}, {1.5, "probe-ok", Closed},
		}, []State{Open, HalfOpen, Closed}},
		{"idle probes count as failures while closed", []step{
			{0, "probe-fail", Closed}, {10, "probe-fail", Closed}, {20, "probe-ok", Closed},
			{30, "probe-fail", Closed}, {40, "probe-fail", Closed}, {50, "probe-fail", Open},
		}, []State{Open}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := runSteps(t, tt.steps)
			assert.Equal(t, tt.seen, seen)
		})
	}
}

// TestBreakerHysteresis: a cluster that fails again soon after closing, or
// whose recovery fails, waits twice as long each time (up to MaxOpen); one
// that stayed closed for StableAfter starts again from MinOpen.
func TestBreakerHysteresis(t *testing.T) {
	b := newBreaker(breakerOpts, t0, nil)
	now := t0
	trip := func() {
		for range 3 {
			b.failure(ticket{gen: b.gen}, now)
		}
		require.Equal(t, Open, b.State())
	}
	// recover probes every 100ms from now and returns how long it took to
	// reach half-open.
	recoverAfter := func() time.Duration {
		start := now
		for b.State() == Open {
			now = now.Add(100 * time.Millisecond)
			b.probe(true, now)
			require.Less(t, now.Sub(start), time.Minute)
		}
		return now.Sub(start)
	}
	closeIt := func() {
		for b.State() == HalfOpen {
			now = now.Add(100 * time.Millisecond)
			b.probe(true, now)
		}
		require.Equal(t, Closed, b.State())
	}

	trip()
	assert.Equal(t, time.Second, recoverAfter())
	closeIt()

	now = now.Add(5 * time.Second) // flaps: fails again soon after closing
	trip()
	assert.Equal(t, 2*time.Second, recoverAfter())
	b.probe(false, now) // the recovery fails too
	require.Equal(t, Open, b.State())
	assert.Equal(t, 4*time.Second, recoverAfter())
	b.probe(false, now)
	assert.Equal(t, 8*time.Second, recoverAfter(), "capped at MaxOpen")
	b.probe(false, now)
	assert.Equal(t, 8*time.Second, recoverAfter(), "capped at MaxOpen")
	closeIt()

	now = now.Add(31 * time.Second) // stable for StableAfter
	trip()
	assert.Equal(t, time.Second, recoverAfter(), "back to MinOpen")
}

func TestBreakerIdleProbes(t *testing.T) {
	b := newBreaker(breakerOpts, t0, nil)
	assert.False(t, b.wantProbe(t0.Add(9*time.Second), 10*time.Second))
	assert.True(t, b.wantProbe(t0.Add(10*time.Second), 10*time.Second))
	b.success(ticket{}, t0.Add(10*time.Second))
	assert.False(t, b.wantProbe(t0.Add(15*time.Second), 10*time.Second))
	assert.False(t, b.wantProbe(t0.Add(time.Hour), -1), "negative: never while closed")
	for range 3 {
		b.failure(ticket{}, t0.Add(20*time.Second))
	}
	assert.True(t, b.wantProbe(t0.Add(20*time.Second), -1), "always while open")
}

func TestBackoff(t *testing.T) {
	s := &Sender{opts: Options{RetryBase: 25 * time.Millisecond, RetryMax: time.Second}, met: unseenMetrics()}
	for n := 1; n <= 12; n++ {
		step := min(25*time.Millisecond<<(n-1), time.Second)
		for range 200 {
			d := s.backoff(n)
			require.GreaterOrEqual(t, d, step/2, "attempt %d", n)
			require.LessOrEqual(t, d, step, "attempt %d", n)
		}
	}
}
