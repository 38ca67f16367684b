package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// options is a run, as the flags describe it (see main.go for each one).
type options struct {
	target        string
	topics        []string
	steps         []step // absolute rates (resolved)
	connections   int
	payloadSize   int
	form          string
	batch         int
	keyFraction   float64
	retryFraction float64
	tagSet        []string
	tagsMin       int
	tagsMax       int
	msgKeys       int
	timeout       time.Duration
	token         string
	seed          uint64
	keyPrefix     string
	maxLag        time.Duration

	// onResult, when set, sees every outcome (tests).
	onResult func(outcome)
}

// maxAnswerBytes bounds how much of an answer is read; produce answers are
// a few hundred bytes per message.
const maxAnswerBytes = 1 << 20

// leadTime is how far after run() is called the first slot is due: enough
// for the senders to start, so the first requests are not late by design.
const leadTime = 20 * time.Millisecond

// run sends the schedule and returns the report. Requests are due at fixed
// instants whatever the answers do (open loop); up to o.connections are in
// flight at once, and each free sender takes the earliest slot not yet
// taken. Latency runs from the slot's intended instant, so time spent
// waiting for a free connection or for a stalled server counts against
// every request it delays, not only the one that met the stall (no
// coordinated omission). Cancelling ctx stops taking new slots; requests in
// flight finish or time out, and the report says the run was interrupted.
func run(ctx context.Context, o options) (*Report, error) {
	paths := make([]string, len(o.topics))
	for i, t := range o.topics {
		p, err := producePath(t)
		if err != nil {
			return nil, err
		}
		paths[i] = p
	}
	m := &mix{
		base: trimSlash(o.target), paths: paths, form: o.form, batch: max(1, o.batch),
		payloadSize: o.payloadSize, keyFraction: o.keyFraction, retryFraction: o.retryFraction,
		tagSet: o.tagSet, tagsMin: o.tagsMin, tagsMax: o.tagsMax, msgKeys: o.msgKeys,
		token: o.token, keyPrefix: o.keyPrefix, seed: o.seed,
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: o.timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.connections,
		MaxIdleConnsPerHost: o.connections,
		MaxConnsPerHost:     o.connections,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	sched := newSchedule(o.steps)
	start := time.Now().Add(leadTime)
	r := &runner{
		opts: o, mix: m, sched: sched, start: start,
		client: &http.Client{Transport: transport},
		rec:    newRecorder(start, sched),
	}
	r.rec.onResult = o.onResult

	hiccups := newHist(histSig)
	stopMeter := make(chan struct{})
	var meter, senders sync.WaitGroup
	meter.Go(func() { measureHiccups(hiccups, stopMeter) })
	for range o.connections {
		senders.Go(func() { r.send(ctx) })
	}
	senders.Wait()
	close(stopMeter)
	meter.Wait()
	return r.report(ctx.Err() != nil, hiccups), nil
}

type runner struct {
	opts   options
	mix    *mix
	sched  *schedule
	start  time.Time
	client *http.Client
	rec    *recorder
	next   atomic.Int64 // the next slot not yet taken
	inHTTP atomic.Int64 // senders waiting on the target (request out, answer not yet read)
}

// send is one connection's loop: take the earliest free slot, wait for its
// instant, send, record; until the schedule or ctx ends.
func (r *runner) send(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	total := r.sched.total()
	for ctx.Err() == nil {
		i := r.next.Add(1) - 1
		if i >= total {
			return
		}
		picked := time.Now()
		// Slots are taken in order, so a slot taken late while another
		// sender was not waiting on the target was late because that sender
		// was itself late for an earlier slot: the generator's delay, not
		// the connections'.
		connBound := r.inHTTP.Load() >= int64(r.opts.connections-1)
		k, off := r.sched.slot(i)
		intended := r.start.Add(off)
		if intended.After(picked) && !waitUntil(ctx, timer, intended) {
			return
		}
		o := r.do(ctx, i, k, intended, picked)
		o.connBound = connBound
		r.rec.record(o)
	}
}

// do sends slot i's request and classifies the answer.
func (r *runner) do(ctx context.Context, i int64, k int, intended, picked time.Time) outcome {
	p := r.mix.choose(i)
	o := outcome{slot: i, step: k, intended: intended, picked: picked, keyed: p.keyed, retry: p.retry}
	req, err := r.mix.request(p)
	if err != nil { // cannot happen with a validated target; count it rather than panic
		o.sent, o.done, o.errKey = time.Now(), time.Now(), "request: "+err.Error()
		return o
	}
	// A request in flight when ctx is cancelled still gets its answer, bounded by timeout.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.timeout)
	defer cancel()
	req = req.WithContext(rctx)
	r.inHTTP.Add(1)
	o.sent = time.Now()
	resp, err := r.client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
		_ = resp.Body.Close()
	}
	o.done = time.Now()
	r.inHTTP.Add(-1)
	switch {
	case err != nil:
		o.errKey = transportClass(err)
	case resp.StatusCode/100 == 2:
		o.status = resp.StatusCode
		o.answer = countAnswer(body)
		r.mix.answered(p)
	default:
		o.status = resp.StatusCode
		o.errKey = strconv.Itoa(resp.StatusCode) + " " + errorCode(body)
	}
	return o
}

// countAnswer reads the per-message flags of a 2xx produce answer. The
// sidecar writes compact JSON (encoding/json), so counting the exact byte
// sequences is enough and costs the generator far less CPU than decoding
// every answer, which matters when it shares the machine with the sidecar.
func countAnswer(body []byte) answerCounts {
	return answerCounts{
		duplicate:     int64(bytes.Count(body, []byte(`"duplicate":true`))),
		duplicateRisk: int64(bytes.Count(body, []byte(`"duplicateRisk":true`))),
		persisted:     int64(bytes.Count(body, []byte(`"status":"persisted"`))),
		failover:      int64(bytes.Count(body, []byte(`"status":"failover"`))),
		spooled:       int64(bytes.Count(body, []byte(`"status":"spooled"`))),
		scheduled:     int64(bytes.Count(body, []byte(`"status":"scheduled"`))),
	}
}

// errorCode returns error.code from an error answer, or "-" when the body
// is not the sidecar's error shape (a proxy in between, for example).
func errorCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return "-"
	}
	return e.Error.Code
}

// transportClass names a failed request that got no HTTP answer.
func transportClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	default:
		return "transport error"
	}
}

// hiccupTick is the period of the hiccup meter.
const hiccupTick = time.Millisecond

// measureHiccups records, until stop closes, how late a 1 ms sleep wakes
// up: the generator's own scheduling delay (jHiccup's idea). When it is
// large, the machine or the Go runtime, not the target, delayed sends. It
// sleeps the way the senders' last stretch does (sleepPrecise), so it
// measures the delays their sends see, not the Go timers' resolution. A
// 100 ms freeze is recorded as the 100 samples it swallowed (100, 99, ...
// 1 ms), as jHiccup does, so the percentiles are shares of time, not of
// wake-ups.
func measureHiccups(h *hdr.Histogram, stop <-chan struct{}) {
	tick := hiccupTick.Microseconds()
	for {
		select {
		case <-stop:
			return
		default:
		}
		t := time.Now()
		sleepPrecise(hiccupTick)
		us := min(max(0, (time.Since(t)-hiccupTick).Microseconds()), histMax)
		_ = h.RecordCorrectedValue(us, tick) // within range: cannot fail
	}
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
