package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink is a produce endpoint over real loopback HTTP that records when each
// slot's request arrived. answer decides the reply (nil: 200 persisted).
type sink struct {
	srv    *httptest.Server
	answer func(w http.ResponseWriter, r *http.Request, slot int64, body []byte)

	mu      sync.Mutex
	arrived map[int64]time.Time
	bodies  map[int64][]byte
	headers map[int64]http.Header
}

func newSink(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, slot int64, body []byte)) *sink {
	t.Helper()
	s := &sink{answer: answer, arrived: map[int64]time.Time{}, bodies: map[int64][]byte{}, headers: map[int64]http.Header{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, _ := io.ReadAll(r.Body)
	slot := slotOf(body)
	s.mu.Lock()
	if _, seen := s.arrived[slot]; !seen { // a retry repeats an earlier slot's body
		s.arrived[slot] = now
		s.bodies[slot] = body
		s.headers[slot] = r.Header.Clone()
	}
	s.mu.Unlock()
	if s.answer != nil {
		s.answer(w, r, slot, body)
		return
	}
	persisted(w, false)
}

func persisted(w http.ResponseWriter, duplicate bool) {
	w.Header().Set("Content-Type", "application/json")
	if duplicate {
		_, _ = io.WriteString(w, `{"results":[{"uid":"u","messageId":"1:0:0:0","status":"persisted","cluster":"c","duplicate":true}]}`)
		return
	}
	_, _ = io.WriteString(w, `{"results":[{"uid":"u","messageId":"1:0:0:0","status":"persisted","cluster":"c"}]}`)
}

// slotOf reads the slot from a raw payload ("pscload <prefix> <slot>/<b> ...")
// or from the first message of a JSON batch.
func slotOf(body []byte) int64 {
	text := string(body)
	if strings.HasPrefix(text, `{"messages"`) {
		var req struct{ Messages []message }
		if json.Unmarshal(body, &req) != nil || len(req.Messages) == 0 {
			return -1
		}
		text = req.Messages[0].Payload
	}
	f := strings.Fields(text)
	if len(f) < 3 {
		return -1
	}
	n, err := strconv.ParseInt(strings.Split(f[2], "/")[0], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.arrived)
}

func testOptions(target string, steps ...step) options {
	return options{
		target: target, topics: []string{"public/default/pscload"}, steps: steps,
		connections: 8, payloadSize: 100, form: "raw", batch: 1,
		tagSet: []string{"A", "B", "C"}, tagsMin: 0, tagsMax: 2, msgKeys: 10,
		timeout: 5 * time.Second, seed: 1, keyPrefix: "t", maxLag: time.Millisecond,
	}
}

// collect returns an onResult hook and a function reading what it saw.
func collect() (func(outcome), func() map[int64]outcome) {
	var mu sync.Mutex
	seen := map[int64]outcome{}
	return func(o outcome) {
			mu.Lock()
			seen[o.slot] = o
			mu.Unlock()
		}, func() map[int64]outcome {
			mu.Lock()
			defer mu.Unlock()
			return seen
		}
}

// TestSendsAtIntendedRate: every planned request arrives, none before its
// instant, and each step's window receives its rate times its length, give
// or take what the run's own measured send lag can move across a boundary.
func TestSendsAtIntendedRate(t *testing.T) {
	s := newSink(t, nil)
	o := testOptions(s.srv.URL, step{Rate: 200, Duration: time.Second}, step{Rate: 400, Duration: time.Second})
	hook, outcomes := collect()
	o.onResult = hook
	rep, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	const planned = 600
	if rep.Total.Planned != planned || rep.Total.Requests != planned || rep.Total.OK != planned || s.count() != planned {
		t.Fatalf("planned %d, sent %d, 2xx %d, server saw %d; want %d each",
			rep.Total.Planned, rep.Total.Requests, rep.Total.OK, s.count(), planned)
	}
	start := rep.Started
	var maxLag time.Duration
	s.mu.Lock()
	defer s.mu.Unlock()
	for slot, o := range outcomes() {
		at := s.arrived[slot]
		if at.Before(o.intended) {
			t.Fatalf("slot %d arrived %s before its instant", slot, o.intended.Sub(at))
		}
		maxLag = max(maxLag, at.Sub(o.intended))
	}
	windows := []struct {
		from, to time.Duration
		rate     float64
	}{{0, time.Second, 200}, {time.Second, 2 * time.Second, 400}}
	for k, w := range windows {
		var n int
		for _, at := range s.arrived {
			if d := at.Sub(start); d >= w.from && d < w.to {
				n++
			}
		}
		// Requests due in the last maxLag of the previous window may land in
		// this one, and this window's last maxLag may land in the next.
		prev := 0.0
		if k > 0 {
			prev = windows[k-1].rate
		}
		tol := int(math.Ceil((prev+w.rate)*maxLag.Seconds())) + 1
		want := int(w.rate)
		if n < want-tol || n > want+tol {
			t.Errorf("window %d: %d arrivals, want %d +- %d (max arrival lag %s)", k, n, want, tol, maxLag)
		}
	}
	t.Logf("max arrival lag %s; send lag p99 %.2f ms (generator %.2f, connection wait %.2f), hiccups p99 %.2f ms",
		maxLag, rep.Total.SendLag.P99, rep.Total.GeneratorLag.P99, rep.Total.ConnWait.P99, rep.Schedule.Hiccups.P99)
	for k, st := range rep.Steps {
		if st.Requests != int64(windows[k].rate) {
			t.Errorf("step %d counted %d requests, want %d", k+1, st.Requests, int(windows[k].rate))
		}
	}
}

// TestLatencyFromIntendedTime: the server stalls every request for 200 ms
// once. Every request due during the stall must show latency of at least
// the rest of the stall after its instant, not only the one that met it,
// and the stall must reach the p90 (about 13% of requests were due in it).
// A generator that timed from the actual send would see only the requests
// already on the connections (at most 4) as slow.
func TestLatencyFromIntendedTime(t *testing.T) {
	var (
		gate       sync.RWMutex
		stallOnce  sync.Once
		stallStart time.Time
		stallEnd   time.Time
	)
	const stallSlot, stall = 100, 200 * time.Millisecond
	s := newSink(t, func(w http.ResponseWriter, _ *http.Request, slot int64, _ []byte) {
		if slot == stallSlot {
			stallOnce.Do(func() {
				gate.Lock() // every other request now waits here
				stallStart = time.Now()
				time.Sleep(stall)
				stallEnd = time.Now()
				gate.Unlock()
			})
		}
		// Wait out a stall in progress; there is nothing to guard.
		gate.RLock()
		gate.RUnlock() //nolint:staticcheck // SA2001: the empty section is the wait
		persisted(w, false)
	})
	o := testOptions(s.srv.URL, step{Rate: 200, Duration: 1500 * time.Millisecond})
	o.connections = 4
	hook, outcomes := collect()
	o.onResult = hook
	rep, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.OK != 300 {
		t.Fatalf("2xx %d of %d", rep.Total.OK, rep.Total.Requests)
	}
	var during int
	for slot, o := range outcomes() {
		if o.intended.Before(stallStart) || !o.intended.Before(stallEnd) {
			continue
		}
		during++
		if min := stallEnd.Sub(o.intended); o.latency() < min {
			t.Errorf("slot %d due %s into the stall: latency %s, want at least %s (sent %s after its instant)",
				slot, o.intended.Sub(stallStart), o.latency(), min, o.sent.Sub(o.intended))
		}
	}
	// 200 ms at 200/s: about 40 requests were due during the stall.
	if want := int(0.8 * stall.Seconds() * 200); during < want {
		t.Fatalf("%d requests due during the stall, want at least %d", during, want)
	}
	if p90 := rep.Total.Latency.P90; p90 < 20 {
		t.Errorf("p90 %.2f ms: the stall did not reach the percentiles", p90)
	}
	if mx := rep.Total.Latency.Max; mx < float64(stall.Milliseconds())-1 {
		t.Errorf("max %.2f ms, want at least the stall", mx)
	}
	if !rep.Schedule.ConnSaturated {
		t.Errorf("4 connections blocked for 200 ms at 200/s, yet the report says they were not saturated: %+v", rep.Schedule)
	}
	t.Logf("%d requests due during the stall; p50 %.2f p90 %.2f p99 %.2f max %.2f ms",
		during, rep.Total.Latency.P50, rep.Total.Latency.P90, rep.Total.Latency.P99, rep.Total.Latency.Max)
}

// TestScheduleHealth: a server slower than the arrival rate on one
// connection saturates it; an impossible --max-lag (1 ns: no timer wakes
// up that fast) flags the generator itself. Both fail the run's schedule.
func TestScheduleHealth(t *testing.T) {
	t.Run("connections saturated", func(t *testing.T) {
		s := newSink(t, func(w http.ResponseWriter, _ *http.Request, _ int64, _ []byte) {
			time.Sleep(20 * time.Millisecond) // 50/s on one connection, against 200/s due
			persisted(w, false)
		})
		o := testOptions(s.srv.URL, step{Rate: 200, Duration: 500 * time.Millisecond})
		o.connections = 1
		rep, err := run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		h := rep.Schedule
		// On a busy machine the generator may also fall behind: that
		// reason then comes first, so look for saturation among all.
		if h.OnSchedule || !h.ConnSaturated || !strings.Contains(strings.Join(h.Reasons, "\n"), "CONNECTIONS SATURATED") {
			t.Fatalf("schedule %+v", h)
		}
		// The last request was due at 495 ms and could start only after the
		// 99 before it took 20 ms each.
		if rep.Total.Latency.Max < 1500 {
			t.Errorf("max latency %.0f ms, want the queue (>= 1500 ms)", rep.Total.Latency.Max)
		}
	})
	t.Run("generator behind", func(t *testing.T) {
		s := newSink(t, nil)
		o := testOptions(s.srv.URL, step{Rate: 200, Duration: 300 * time.Millisecond})
		o.maxLag = time.Nanosecond
		rep, err := run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if h := rep.Schedule; h.OnSchedule || !h.GeneratorBehind || !strings.Contains(h.Reasons[0], "GENERATOR FELL BEHIND") {
			t.Fatalf("schedule %+v", h)
		}
		var b strings.Builder
		if err := writeText(&b, rep); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "NOT A VALID MEASUREMENT") {
			t.Fatalf("summary does not say so:\n%s", b.String())
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		s := newSink(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		rep, err := run(ctx, testOptions(s.srv.URL, step{Rate: 100, Duration: 10 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Interrupted || rep.Schedule.OnSchedule || rep.Total.Requests >= rep.Total.Planned || rep.Total.Requests == 0 {
			t.Fatalf("interrupted %v, schedule %+v, %d of %d sent", rep.Interrupted, rep.Schedule, rep.Total.Requests, rep.Total.Planned)
		}
	})
}

// TestRequestMix: keys, deliberate retries, tags, message keys and the token
// reach the server as the flags say, retries repeat an answered request
// byte for byte, and the summary counts the duplicates and the errors by
// status and code.
func TestRequestMix(t *testing.T) {
	var (
		mu   sync.Mutex
		seen = map[string]string{} // idempotency key -> body
		bad  []string
	)
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, slot int64, body []byte) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			mu.Lock()
			bad = append(bad, "no token")
			mu.Unlock()
		}
		if slot%10 == 7 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":{"code":"RATE_LIMITED","message":"slow down"}}`)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		dup := false
		if key != "" {
			mu.Lock()
			prev, ok := seen[key]
			seen[key] = string(body) + "|" + r.Header.Get("X-Tags") + "|" + r.Header.Get("X-Key")
			if ok && prev != seen[key] {
				bad = append(bad, "retry of "+key+" differs")
			}
			mu.Unlock()
			dup = ok
		}
		persisted(w, dup)
	})
	o := testOptions(s.srv.URL, step{Rate: 400, Duration: time.Second})
	o.keyFraction, o.retryFraction, o.token = 0.5, 0.1, "tok"
	o.tagsMin, o.tagsMax = 1, 3
	rep, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("server saw: %v", bad[:min(5, len(bad))])
	}
	tot := rep.Total
	if tot.RetriesSent == 0 || tot.Answers.Duplicate != tot.RetriesSent || tot.RetriesDuplicate != tot.RetriesSent || tot.RetriesProduced != 0 {
		t.Errorf("%d retries sent, %d answered duplicate (%d counted as retries), %d produced again: want all duplicate",
			tot.RetriesSent, tot.Answers.Duplicate, tot.RetriesDuplicate, tot.RetriesProduced)
	}
	// Retries repeat slots answered 2xx, which never end in 7, so the 429s
	// are exactly the original slots ending in 7.
	var want429 int64
	for slot := range s.arrived {
		if slot%10 == 7 {
			want429++
		}
	}
	if got := tot.Errors["429 RATE_LIMITED"]; got != want429 || tot.ErrorCount != want429 || len(tot.Errors) != 1 {
		t.Errorf("errors %v, want 429 RATE_LIMITED: %d", tot.Errors, want429)
	}
	if tot.OK+tot.ErrorCount != tot.Requests || tot.Requests != 400 {
		t.Errorf("%d 2xx + %d errors of %d requests", tot.OK, tot.ErrorCount, tot.Requests)
	}
	originals := tot.Requests - tot.RetriesSent
	if keyedOriginals := tot.Keyed - tot.RetriesSent; keyedOriginals < originals/4 || keyedOriginals > 3*originals/4 {
		t.Errorf("%d of %d original requests keyed, want about half", keyedOriginals, originals)
	}
	for slot, h := range s.headers {
		n := len(strings.Split(h.Get("X-Tags"), ","))
		if n < 1 || n > 3 || h.Get("X-Key") == "" || h.Get("Content-Type") != "application/octet-stream" || len(s.bodies[slot]) != 100 {
			t.Fatalf("slot %d: headers %v, %d-byte body", slot, h, len(s.bodies[slot]))
		}
	}
}

func TestJSONForm(t *testing.T) {
	var (
		mu  sync.Mutex
		bad []string
	)
	s := newSink(t, func(w http.ResponseWriter, r *http.Request, slot int64, body []byte) {
		mu.Lock()
		defer mu.Unlock()
		var req struct{ Messages []message }
		if err := json.Unmarshal(body, &req); err != nil || r.Header.Get("Content-Type") != "application/json" || len(req.Messages) != 3 {
			bad = append(bad, fmt.Sprintf("slot %d: %v, %d messages", slot, err, len(req.Messages)))
		}
		for b, m := range req.Messages {
			if m.IdempotencyKey != fmt.Sprintf("t-%d-%d", slot, b) {
				bad = append(bad, "key "+m.IdempotencyKey)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"results":[{"uid":"a","status":"persisted"},{"uid":"b","status":"spooled"},{"uid":"c","status":"failover","duplicateRisk":true}]}`)
	})
	o := testOptions(s.srv.URL, step{Rate: 100, Duration: 200 * time.Millisecond})
	o.form, o.batch, o.keyFraction = "json", 3, 1
	rep, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatal(bad)
	}
	a := rep.Total.Answers
	if a.Persisted != 20 || a.Spooled != 20 || a.Failover != 20 || a.DuplicateRisk != 20 {
		t.Fatalf("answers %+v, want 20 of each", a)
	}
}

func TestTransportErrors(t *testing.T) {
	s := newSink(t, nil)
	url := s.srv.URL
	s.srv.Close() // nothing listens there now
	o := testOptions(url, step{Rate: 100, Duration: 100 * time.Millisecond})
	rep, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.Errors["connection refused"] != 10 {
		t.Fatalf("errors %v, want 10 connection refused", rep.Total.Errors)
	}

	slow := newSink(t, func(w http.ResponseWriter, r *http.Request, _ int64, _ []byte) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second):
		}
	})
	o = testOptions(slow.srv.URL, step{Rate: 100, Duration: 50 * time.Millisecond})
	o.timeout = 50 * time.Millisecond
	if rep, err = run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if rep.Total.Errors["timeout"] != 5 {
		t.Fatalf("errors %v, want 5 timeout", rep.Total.Errors)
	}
}
