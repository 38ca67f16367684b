package main

import (
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds, in microseconds. Latency is measured from the intended
// send time, so a run whose requests queue for a free connection can see
// latencies far beyond --timeout: an hour covers any run we plan. Values
// above it are recorded as the maximum (and counted in clamped).
const (
	histMin  = 1
	histMax  = int64(time.Hour / time.Microsecond)
	histSig  = 3 // per step and overall: 0.1% precision, ~190 KB each
	timelSig = 2 // per second, for the plot: 1% precision, ~27 KB each
)

func newHist(sig int) *hdr.Histogram { return hdr.New(histMin, histMax, sig) }

// outcome is what one request did, with the four instants that matter:
// intended (its slot in the schedule), picked (a connection was free to
// take it), sent (handed to the HTTP client) and done (answer read or
// error). Latency is done - intended.
type outcome struct {
	slot     int64
	step     int
	intended time.Time
	picked   time.Time
	sent     time.Time
	done     time.Time
	status   int    // HTTP status; 0 for a transport error
	errKey   string // "409 IDEMPOTENCY_IN_PROGRESS", "timeout", ...; "" for 2xx
	keyed    bool
	retry    bool
	answer   answerCounts
	// connBound: when the slot was taken, every other sender was waiting
	// on the target, so a late take was the connections' limit.
	connBound bool
}

// answerCounts are the per-message flags read from a 2xx answer.
type answerCounts struct {
	duplicate, duplicateRisk, persisted, failover, spooled, scheduled int64
}

func (a *answerCounts) add(b answerCounts) {
	a.duplicate += b.duplicate
	a.duplicateRisk += b.duplicateRisk
	a.persisted += b.persisted
	a.failover += b.failover
	a.spooled += b.spooled
	a.scheduled += b.scheduled
}

// sendLag is how late the request left; it splits into connWait, the time
// it waited after its instant because every connection was waiting on the
// target, and genLag, the rest: the generator's own delay (timer wake-up,
// CPU starvation, a sender late for an earlier slot, building the request).
func (o *outcome) sendLag() time.Duration { return o.sent.Sub(o.intended) }
func (o *outcome) genLag() time.Duration  { return o.sendLag() - o.connWait() }
func (o *outcome) latency() time.Duration { return o.done.Sub(o.intended) }
func (o *outcome) connWait() time.Duration {
	if !o.connBound {
		return 0
	}
	return max(0, o.picked.Sub(o.intended))
}

// tally aggregates outcomes: one per step (by intended time) and one overall.
type tally struct {
	requests int64 // outcomes recorded
	ok       int64 // 2xx
	keyed    int64
	retries  int64
	// Deliberate retries (of requests already answered 2xx) by how they were
	// answered: duplicate is right; 2xx without it means the message was
	// produced again (expected only if the first answer had duplicateRisk).
	retryDup      int64
	retryProduced int64
	answer        answerCounts
	errors        map[string]int64
	latency       *hdr.Histogram
	sendLag       *hdr.Histogram
	genLag        *hdr.Histogram
	connWait      *hdr.Histogram
	// By actual time, counted in the step whose window holds the instant:
	sentInWindow int64
	okInWindow   int64
}

func newTally() *tally {
	return &tally{
		errors:   map[string]int64{},
		latency:  newHist(histSig),
		sendLag:  newHist(histSig),
		genLag:   newHist(histSig),
		connWait: newHist(histSig),
	}
}

func (t *tally) add(o *outcome, c *int64) {
	t.requests++
	if o.keyed {
		t.keyed++
	}
	if o.retry {
		t.retries++
	}
	if o.errKey == "" {
		t.ok++
		t.answer.add(o.answer)
		if o.retry && o.answer.duplicate > 0 {
			t.retryDup++
		} else if o.retry {
			t.retryProduced++
		}
	} else {
		t.errors[o.errKey]++
	}
	record(t.latency, o.latency(), c)
	record(t.sendLag, o.sendLag(), c)
	record(t.genLag, o.genLag(), c)
	record(t.connWait, o.connWait(), c)
}

// second is one second of the run for the timeline: latency by intended
// time (so a stall shows where the requests it delayed were due), counts by
// the instant they happened.
type second struct {
	intended int64
	sent     int64
	ok       int64 // 2xx answers read in this second
	errors   int64 // errors that ended in this second
	latency  *hdr.Histogram
}

// recorder collects outcomes from every sender goroutine.
type recorder struct {
	start    time.Time
	sched    *schedule
	onResult func(outcome) // tests: every outcome, on the sender's goroutine

	mu      sync.Mutex
	steps   []*tally
	total   *tally
	seconds []*second
	clamped int64
}

func newRecorder(start time.Time, sched *schedule) *recorder {
	r := &recorder{start: start, sched: sched, total: newTally()}
	for range sched.steps {
		r.steps = append(r.steps, newTally())
	}
	return r
}

func (r *recorder) record(o outcome) {
	if r.onResult != nil {
		r.onResult(o)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps[o.step].add(&o, &r.clamped)
	r.total.add(&o, &r.clamped)
	if s := r.sched.stepAt(o.sent.Sub(r.start)); s >= 0 {
		r.steps[s].sentInWindow++
		r.total.sentInWindow++
	}
	if o.errKey == "" {
		if s := r.sched.stepAt(o.done.Sub(r.start)); s >= 0 {
			r.steps[s].okInWindow++
			r.total.okInWindow++
		}
	}
	in := r.second(o.intended)
	in.intended++
	record(in.latency, o.latency(), &r.clamped)
	r.second(o.sent).sent++
	if o.errKey == "" {
		r.second(o.done).ok++
	} else {
		r.second(o.done).errors++
	}
}

// second returns the timeline bucket holding t, growing the timeline.
func (r *recorder) second(t time.Time) *second {
	i := max(0, int(t.Sub(r.start)/time.Second))
	for len(r.seconds) <= i {
		r.seconds = append(r.seconds, &second{latency: newHist(timelSig)})
	}
	return r.seconds[i]
}

// record adds d to h in microseconds, clamping to the histogram's range.
func record(h *hdr.Histogram, d time.Duration, clamped *int64) {
	us := d.Microseconds()
	switch {
	case us < 0: // clock steps cannot happen (monotonic), but do not fail on one
		us = 0
	case us > histMax:
		us = histMax
		*clamped++
	}
	_ = h.RecordValue(us) // cannot fail: us is within the histogram's range
}
