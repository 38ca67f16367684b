package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Report is a run's result: what the text summary, --json and --plot show.
// Latencies are in milliseconds; rates in requests per second.
type Report struct {
	Target       string    `json:"target"`
	Topics       []string  `json:"topics"`
	Form         string    `json:"form"`
	Batch        int       `json:"batch"`
	Connections  int       `json:"connections"`
	PayloadBytes int       `json:"payloadBytes"`
	Keys         float64   `json:"keys"`
	Retries      float64   `json:"retries"`
	TagsPerMsg   string    `json:"tagsPerMsg"`
	Seed         uint64    `json:"seed"`
	KeyPrefix    string    `json:"keyPrefix"`
	Started      time.Time `json:"started"`
	Interrupted  bool      `json:"interrupted"`

	Steps []Summary `json:"steps"`
	Total Summary   `json:"total"`

	Schedule  ScheduleHealth `json:"schedule"`
	Timeline  []Second       `json:"timeline"`
	ClampedUs int64          `json:"clampedValues,omitempty"` // latencies beyond one hour, recorded as one hour
}

// Summary is one step, or the whole run. Requests are counted in the step
// whose window holds their intended instant; sentRate and okRate count what
// happened (sends, 2xx answers) within the step's window.
type Summary struct {
	Step         int              `json:"step,omitempty"` // 1-based; 0 for the total
	StartS       float64          `json:"startS"`
	DurationS    float64          `json:"durationS"`
	IntendedRate float64          `json:"intendedRate"`
	SentRate     float64          `json:"sentRate"`
	OKRate       float64          `json:"okRate"`
	Planned      int64            `json:"planned"`
	Requests     int64            `json:"requests"`
	OK           int64            `json:"ok"`
	Errors       map[string]int64 `json:"errors"`
	ErrorCount   int64            `json:"errorCount"`
	Keyed        int64            `json:"keyed"`
	RetriesSent  int64            `json:"retriesSent"`
	// RetriesDuplicate and RetriesProduced split the retries answered 2xx:
	// answered duplicate, or produced again (a second message).
	RetriesDuplicate int64       `json:"retriesDuplicate"`
	RetriesProduced  int64       `json:"retriesProduced"`
	Answers          Answers     `json:"answers"`
	Latency          Percentiles `json:"latencyMs"`
	SendLag          Percentiles `json:"sendLagMs"`
	GeneratorLag     Percentiles `json:"generatorLagMs"`
	ConnWait         Percentiles `json:"connWaitMs"`
}

// Answers counts per-message flags in 2xx answers.
type Answers struct {
	Duplicate     int64 `json:"duplicate"`
	DuplicateRisk int64 `json:"duplicateRisk"`
	Persisted     int64 `json:"persisted"`
	Failover      int64 `json:"failover"`
	Spooled       int64 `json:"spooled"`
	Scheduled     int64 `json:"scheduled"`
}

// Percentiles of a histogram, in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// ScheduleHealth says whether requests left at their intended instants. When
// OnSchedule is false the run did not offer the load it claims: Reasons say
// why, and the numbers must not be read as the target's behaviour at the
// intended rate.
type ScheduleHealth struct {
	OnSchedule      bool        `json:"onSchedule"`
	MaxLagMs        float64     `json:"maxLagMs"`
	LateShare       float64     `json:"lateShare"` // requests sent more than maxLag after their instant
	GeneratorBehind bool        `json:"generatorBehind"`
	ConnSaturated   bool        `json:"connectionsSaturated"`
	Hiccups         Percentiles `json:"hiccupsMs"`
	Reasons         []string    `json:"reasons,omitempty"`
}

// Second is one second of the timeline.
type Second struct {
	T        int     `json:"t"`
	Intended int64   `json:"intended"`
	Sent     int64   `json:"sent"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	P50      float64 `json:"p50Ms"`
	P99      float64 `json:"p99Ms"`
}

func percentiles(h *hdr.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		P50:  ms(h.ValueAtQuantile(50)),
		P90:  ms(h.ValueAtQuantile(90)),
		P99:  ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)),
		Max:  ms(h.Max()),
	}
}

// lateShare is the share of h's values above limit.
func lateShare(h *hdr.Histogram, limit time.Duration) float64 {
	n := h.TotalCount()
	if n == 0 {
		return 0
	}
	var late int64
	for _, b := range h.Distribution() {
		if b.From > limit.Microseconds() {
			late += b.Count
		}
	}
	return float64(late) / float64(n)
}

// lateLimit is the share of late sends above which the schedule is not met.
const lateLimit = 0.01

func (r *runner) report(interrupted bool, hiccups *hdr.Histogram) *Report {
	o := r.opts
	rec := r.rec
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rep := &Report{
		Target: o.target, Topics: o.topics, Form: o.form, Batch: max(1, o.batch),
		Connections: o.connections, PayloadBytes: o.payloadSize,
		Keys: o.keyFraction, Retries: o.retryFraction,
		TagsPerMsg: fmt.Sprintf("%d-%d of %d", o.tagsMin, o.tagsMax, len(o.tagSet)),
		Seed:       o.seed, KeyPrefix: o.keyPrefix, Started: r.start, Interrupted: interrupted,
		ClampedUs: rec.clamped,
	}
	for k, st := range r.sched.steps {
		s := summarize(rec.steps[k], r.sched.first[k+1]-r.sched.first[k], r.sched.starts[k], st.Duration, st.Rate)
		s.Step = k + 1
		rep.Steps = append(rep.Steps, s)
	}
	dur := r.sched.duration()
	rep.Total = summarize(rec.total, r.sched.total(), 0, dur, float64(r.sched.total())/dur.Seconds())
	for i, s := range rec.seconds {
		p := percentiles(s.latency)
		rep.Timeline = append(rep.Timeline, Second{T: i, Intended: s.intended, Sent: s.sent, OK: s.ok, Errors: s.errors, P50: p.P50, P99: p.P99})
	}
	rep.Schedule = scheduleHealth(rec.total, hiccups, o.maxLag, interrupted)
	return rep
}

func summarize(t *tally, planned int64, start, d time.Duration, rate float64) Summary {
	s := Summary{
		StartS: start.Seconds(), DurationS: d.Seconds(), IntendedRate: rate,
		SentRate: float64(t.sentInWindow) / d.Seconds(), OKRate: float64(t.okInWindow) / d.Seconds(),
		Planned: planned, Requests: t.requests, OK: t.ok, Errors: maps.Clone(t.errors),
		Keyed: t.keyed, RetriesSent: t.retries, RetriesDuplicate: t.retryDup, RetriesProduced: t.retryProduced,
		Answers: Answers{
			Duplicate: t.answer.duplicate, DuplicateRisk: t.answer.duplicateRisk,
			Persisted: t.answer.persisted, Failover: t.answer.failover,
			Spooled: t.answer.spooled, Scheduled: t.answer.scheduled,
		},
		Latency: percentiles(t.latency), SendLag: percentiles(t.sendLag),
		GeneratorLag: percentiles(t.genLag), ConnWait: percentiles(t.connWait),
	}
	for _, n := range t.errors {
		s.ErrorCount += n
	}
	return s
}

// scheduleHealth decides whether the run met its schedule. More than 1% of
// requests sent later than maxLag after their instant means it did not. Each
// cause is named when it alone made more than 0.5% late: the generator (late
// although a connection was free) or the connections (all busy: the target
// answered slower than requests arrived). Either way the target was offered
// less than the intended rate.
func scheduleHealth(t *tally, hiccups *hdr.Histogram, maxLag time.Duration, interrupted bool) ScheduleHealth {
	h := ScheduleHealth{
		MaxLagMs:  float64(maxLag) / float64(time.Millisecond),
		LateShare: lateShare(t.sendLag, maxLag),
		Hiccups:   percentiles(hiccups),
	}
	genLate := lateShare(t.genLag, maxLag)
	connLate := lateShare(t.connWait, maxLag)
	lag := percentiles(t.genLag)
	wait := percentiles(t.connWait)
	if genLate > lateLimit/2 {
		h.GeneratorBehind = true
		h.Reasons = append(h.Reasons, fmt.Sprintf(
			"GENERATOR FELL BEHIND: %.1f%% of requests left more than %s after their instant although a connection was free "+
				"(generator lag p99 %.2f ms, max %.2f ms; 1 ms sleeps woke up late by p99 %.2f ms, max %.2f ms). "+
				"This machine or this process could not keep the schedule: the latencies include the generator's own delay. "+
				"Give pscload its own CPU, lower the rate, or run it on another machine.",
			100*genLate, maxLag, lag.P99, lag.Max, h.Hiccups.P99, h.Hiccups.Max))
	}
	if connLate > lateLimit/2 {
		h.ConnSaturated = true
		h.Reasons = append(h.Reasons, fmt.Sprintf(
			"CONNECTIONS SATURATED: %.1f%% of requests waited more than %s for one of the connections "+
				"(wait p99 %.2f ms, max %.2f ms): the target answered slower than requests arrived. The latencies include "+
				"that wait, as a caller would see it, but the target never had more requests in flight than --connections; "+
				"raise --connections to offer it the full rate.",
			100*connLate, maxLag, wait.P99, wait.Max))
	}
	if interrupted {
		h.Reasons = append(h.Reasons, "INTERRUPTED: the run was stopped before its schedule ended")
	}
	h.OnSchedule = h.LateShare <= lateLimit && !interrupted
	if !h.OnSchedule && len(h.Reasons) == 0 {
		h.Reasons = append(h.Reasons, fmt.Sprintf("SCHEDULE NOT MET: %.1f%% of requests left more than %s after their instant", 100*h.LateShare, maxLag))
	}
	return h
}

// writeJSON writes the report as indented JSON.
func writeJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeText writes the human summary: the run, a table per step and total,
// the errors, what the answers said, and whether the schedule was met.
func writeText(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "pscload -> %s  topics %s  form %s", rep.Target, strings.Join(rep.Topics, ","), rep.Form)
	if rep.Form == "json" {
		fmt.Fprintf(&b, " (batch %d)", rep.Batch)
	}
	fmt.Fprintf(&b, "\n  %d connections, %d B payload, keys %.0f%%, retries %.0f%%, tags %s, key prefix %s\n\n",
		rep.Connections, rep.PayloadBytes, 100*rep.Keys, 100*rep.Retries, rep.TagsPerMsg, rep.KeyPrefix)

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "step\tat\trate/s\tsent/s\t2xx/s\trequests\t2xx\terrors\tdup\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\tlate >"+time.Duration(rep.Schedule.MaxLagMs*float64(time.Millisecond)).String()+"\t")
	row := func(name string, s Summary) {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.0f\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			name, fmtSeconds(s.StartS, s.DurationS), s.IntendedRate, s.SentRate, s.OKRate,
			s.Requests, s.OK, s.ErrorCount, s.Answers.Duplicate,
			fmtMs(s.Latency.P50), fmtMs(s.Latency.P90), fmtMs(s.Latency.P99), fmtMs(s.Latency.P999), fmtMs(s.Latency.Max),
			fmtLate(s.SendLag, rep.Schedule.MaxLagMs))
	}
	for _, s := range rep.Steps {
		row(fmt.Sprint(s.Step), s)
	}
	row("all", rep.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	t := rep.Total
	if t.Requests < t.Planned {
		fmt.Fprintf(&b, "\n%d of %d planned requests were sent\n", t.Requests, t.Planned)
	}
	b.WriteString("\nerrors:")
	if len(t.Errors) == 0 {
		b.WriteString(" none\n")
	} else {
		b.WriteString("\n")
		for _, k := range slices.Sorted(maps.Keys(t.Errors)) {
			fmt.Fprintf(&b, "  %-40s %d\n", k, t.Errors[k])
		}
	}
	a := t.Answers
	fmt.Fprintf(&b, "answers (per message): persisted %d, failover %d, spooled %d, scheduled %d, duplicateRisk %d\n",
		a.Persisted, a.Failover, a.Spooled, a.Scheduled, a.DuplicateRisk)
	fmt.Fprintf(&b, "idempotency: %d keyed requests; %d deliberate retries of requests answered 2xx: %d answered duplicate, %d produced again, %d errors\n",
		t.Keyed, t.RetriesSent, t.RetriesDuplicate, t.RetriesProduced, t.RetriesSent-t.RetriesDuplicate-t.RetriesProduced)
	s := rep.Schedule
	fmt.Fprintf(&b, "schedule: send lag p50 %s p99 %s max %s ms (generator p99 %s, connection wait p99 %s); hiccups p99 %s max %s ms\n",
		fmtMs(t.SendLag.P50), fmtMs(t.SendLag.P99), fmtMs(t.SendLag.Max), fmtMs(t.GeneratorLag.P99), fmtMs(t.ConnWait.P99),
		fmtMs(s.Hiccups.P99), fmtMs(s.Hiccups.Max))
	if s.OnSchedule {
		fmt.Fprintf(&b, "schedule met: %.2f%% of requests left more than %s ms after their instant\n", 100*s.LateShare, fmtMs(s.MaxLagMs))
	} else {
		b.WriteString("\n!!!!!!!! THIS RUN DID NOT KEEP ITS SCHEDULE: IT IS NOT A VALID MEASUREMENT OF THE INTENDED RATE !!!!!!!!\n")
		for _, r := range s.Reasons {
			fmt.Fprintf(&b, "!!! %s\n", r)
		}
	}
	if rep.ClampedUs > 0 {
		fmt.Fprintf(&b, "%d values above one hour were recorded as one hour\n", rep.ClampedUs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtMs(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f", ms)
	default:
		return fmt.Sprintf("%.2f", ms)
	}
}

func fmtSeconds(start, d float64) string { return fmt.Sprintf("%gs+%gs", start, d) }

// fmtLate is the late column: "ok" when the send lag's p99 is within the
// limit, else that p99, so the column stays narrow.
func fmtLate(lag Percentiles, limitMs float64) string {
	if lag.P99 <= limitMs {
		return "ok"
	}
	return "p99 " + fmtMs(lag.P99)
}
