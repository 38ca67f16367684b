package tracer

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// consoleBenchStart is when the console benchmark's messages begin.
var consoleBenchStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// consoleBenchMessages is how many messages the console benchmark stores:
// four events each (accepted, persisted, delivered, acked), so 1M events,
// one message every 57.6 ms over four hours (about 10,400 messages and
// 41,700 events in any ten minutes), on ten topics.
const (
	consoleBenchMessages = 250_000
	consoleBenchSpan     = 4 * time.Hour
)

func consoleBenchUID(m int) string {
	t := consoleBenchStart.Add(time.Duration(m) * consoleBenchSpan / consoleBenchMessages)
	return fmt.Sprintf("%08x-%04x-7%03x-8000-%012x", t.UnixMilli()>>16, t.UnixMilli()&0xffff, m&0xfff, m)
}

func consoleBenchEvents(m int) []Event {
	t := consoleBenchStart.Add(time.Duration(m) * consoleBenchSpan / consoleBenchMessages)
	base := Event{UID: consoleBenchUID(m), Topic: fmt.Sprintf("persistent://billing/pay/topic-%d", m%10),
		Key: fmt.Sprintf("order-%d", m%100_000), Tags: []string{fmt.Sprintf("PAY_%d", 1000+m%50)},
		App: fmt.Sprintf("app-%d", m%5), ClientIP: "10.12.3.45", Node: "sidecar-0", Cluster: "primary"}
	out := make([]Event, 0, 4)
	for i, st := range []struct {
		typ Type
		at  time.Duration
	}{{Accepted, 0}, {Persisted, 2 * time.Millisecond}, {Delivered, 50 * time.Millisecond}, {Acked, 80 * time.Millisecond}} {
		ev := base
		ev.Type, ev.Time = st.typ, t.Add(st.at)
		if i > 0 {
			ev.MessageID = fmt.Sprintf("%d:%d:-1:-1", m/1000, m%1000)
		}
		if i >= 2 {
			ev.Subscription, ev.Consumer, ev.App = "settlement", "host-1/php-fpm-42", "settlement"
		}
		out = append(out, ev)
	}
	return out
}

// BenchmarkConsoleQueries measures the console's two main questions on
// the embedded store holding 1M events (consoleBenchMessages): a message's
// timeline by uid, and a grouped search (one row per message, the first
// page of 100) of a ten-minute window on one topic. Each reports p50 and
// p99 latency over its iterations, and the querying thread's CPU time. Filling the store takes a while
// (about 10 s): run it alone,
//
//	go test -run '^$' -bench BenchmarkConsoleQueries -benchtime 2000x ./tracer/
func BenchmarkConsoleQueries(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "trace.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	batch := make([]Event, 0, 2000)
	for m := range consoleBenchMessages {
		batch = append(batch, consoleBenchEvents(m)...)
		if len(batch) == cap(batch) || m == consoleBenchMessages-1 {
			if err := s.Write(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if n, err := s.Count(ctx); err != nil || n != 4*consoleBenchMessages {
		b.Fatal(n, err)
	}

	b.Run("byUID", func(b *testing.B) {
		var lat, cpu []time.Duration
		i := 0
		for b.Loop() {
			uid := consoleBenchUID(i * 7919 % consoleBenchMessages)
			var res Result
			var err error
			t0 := time.Now()
			cpu = append(cpu, measureCPU(func() { res, err = s.ByUID(ctx, uid, Page{}) }))
			lat = append(lat, time.Since(t0))
			if err != nil || len(res.Events) != 4 {
				b.Fatal(err, len(res.Events))
			}
			i++
		}
		reportPercentiles(b, lat, cpu)
	})
	b.Run("searchMessages10m", func(b *testing.B) {
		var lat, cpu []time.Duration
		i := 0
		windows := int(consoleBenchSpan/(10*time.Minute)) - 1
		for b.Loop() {
			from := consoleBenchStart.Add(time.Duration(i%windows) * 10 * time.Minute)
			q := MessageQuery{Query: Query{Topic: fmt.Sprintf("persistent://billing/pay/topic-%d", i%10),
				Range: TimeRange{From: from, To: from.Add(10 * time.Minute)}}}
			var res MessagePage
			var err error
			t0 := time.Now()
			cpu = append(cpu, measureCPU(func() { res, err = s.SearchMessages(ctx, q, Page{}) }))
			lat = append(lat, time.Since(t0))
			if err != nil || len(res.Rows) != DefaultPageSize || res.Next == "" || len(res.Rows[0].Events) != 4 {
				b.Fatal(err, len(res.Rows))
			}
			i++
		}
		reportPercentiles(b, lat, cpu)
	})
	b.Run("searchMessages10mConsumed", func(b *testing.B) {
		// With a status filter: every message is consumed, so the first
		// candidates fill the page.
		var lat, cpu []time.Duration
		i := 0
		windows := int(consoleBenchSpan/(10*time.Minute)) - 1
		for b.Loop() {
			from := consoleBenchStart.Add(time.Duration(i%windows) * 10 * time.Minute)
			q := MessageQuery{Query: Query{Topic: fmt.Sprintf("persistent://billing/pay/topic-%d", i%10),
				Range: TimeRange{From: from, To: from.Add(10 * time.Minute)}}, Statuses: []Status{StatusConsumed}}
			var res MessagePage
			var err error
			t0 := time.Now()
			cpu = append(cpu, measureCPU(func() { res, err = s.SearchMessages(ctx, q, Page{}) }))
			lat = append(lat, time.Since(t0))
			if err != nil || len(res.Rows) != DefaultPageSize {
				b.Fatal(err, len(res.Rows))
			}
			i++
		}
		reportPercentiles(b, lat, cpu)
	})
}

// reportPercentiles reports the wall-clock latency's p50, p99 and max, and
// the p50 and p99 of the CPU time the querying thread spent (measureCPU):
// on a shared machine the wall time's tail is mostly waiting for a core,
// the CPU time is the query's own cost.
func reportPercentiles(b *testing.B, lat, cpu []time.Duration) {
	if len(lat) == 0 {
		return
	}
	at := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / float64(time.Millisecond)
	}
	slices.Sort(lat)
	slices.Sort(cpu)
	b.ReportMetric(at(lat, 0.50), "p50-ms")
	b.ReportMetric(at(lat, 0.99), "p99-ms")
	b.ReportMetric(at(lat, 1), "max-ms")
	b.ReportMetric(at(cpu, 0.50), "cpu-p50-ms")
	b.ReportMetric(at(cpu, 0.99), "cpu-p99-ms")
}
