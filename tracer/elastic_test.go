package tracer_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer/esfake"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer/storetest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func updateGolden() bool { return *update || os.Getenv("UPDATE_GOLDEN") == "1" }

// goldenEvents is a fixed set of events spanning two UTC days.
func goldenEvents() []tracer.Event {
	base := storetest.Base
	return []tracer.Event{
		{Type: tracer.Accepted, UID: "u-1", Topic: "persistent://billing/pay/orders", Key: "order-1",
			Tags: []string{"PAY_1001"}, App: "checkout", ClientIP: "10.0.0.7", Node: "sidecar-0", Time: base},
		{Type: tracer.Persisted, UID: "u-1", MessageID: "1:2:0", Topic: "persistent://billing/pay/orders", Key: "order-1",
			Node: "sidecar-0", Cluster: "primary", Time: base.Add(3 * time.Millisecond), Latency: 2500 * time.Microsecond},
		storetest.Full("u-1", tracer.DeadLettered, base.Add(time.Second)), // after midnight: the next day's index
	}
}

// TestElasticGoldenRequests snapshots the exact requests the adapter sends.
// Regenerate with: go test ./tracer -run TestElasticGoldenRequests -update
// (or UPDATE_GOLDEN=1).
func TestElasticGoldenRequests(t *testing.T) {
	e, fake := openElastic(t, tracer.ElasticOptions{IndexPrefix: "golden", Shards: 1, Replicas: 1, RefreshInterval: "5s"})
	ctx := t.Context()
	evs := goldenEvents()
	require.NoError(t, e.Write(ctx, slices.Clone(evs)))

	res, err := e.ByUID(ctx, "u-1", tracer.Page{Limit: 2})
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	_, err = e.ByUID(ctx, "u-1", tracer.Page{Limit: 2, Cursor: res.Next})
	require.NoError(t, err)
	_, err = e.ByMessageID(ctx, "1:2:0", tracer.Page{})
	require.NoError(t, err)
	_, err = e.ByKey(ctx, "order-1", tracer.Page{})
	require.NoError(t, err)
	_, err = e.ByTopic(ctx, "persistent://billing/pay/orders", tracer.TimeRange{From: storetest.Base, To: storetest.Base.Add(time.Hour)}, tracer.Page{})
	require.NoError(t, err)
	_, err = e.ByTopic(ctx, "persistent://billing/pay/orders", tracer.TimeRange{From: storetest.Base}, tracer.Page{})
	require.NoError(t, err)
	_, err = e.Search(ctx, tracer.Query{Topic: "persistent://billing/pay/orders", Key: "order-1", Tag: "PAY_1001", App: "checkout",
		ClientIP: "10.0.0.7", Subscription: "settlement", UID: "u-1", MessageID: "1:2:0",
		Types: []tracer.Type{tracer.Acked, tracer.DeadLettered}, Range: tracer.TimeRange{From: storetest.Base, To: storetest.Base.Add(time.Hour)}},
		tracer.Page{Limit: 10})
	require.NoError(t, err)
	_, err = e.Search(ctx, tracer.Query{Tag: "VIP"}, tracer.Page{})
	require.NoError(t, err)
	_, err = e.Consumption(ctx, "u-1")
	require.NoError(t, err)
	mp, err := e.SearchMessages(ctx, tracer.MessageQuery{Query: tracer.Query{Topic: "persistent://billing/pay/orders",
		Range: tracer.TimeRange{From: storetest.Base, To: storetest.Base.Add(10 * time.Minute)}}}, tracer.Page{Limit: 1})
	require.NoError(t, err)
	require.Len(t, mp.Rows, 1)
	_, err = e.SearchMessages(ctx, tracer.MessageQuery{Query: tracer.Query{App: "checkout"},
		Statuses: []tracer.Status{tracer.StatusConsumed}}, tracer.Page{Limit: 1, Cursor: mp.Next})
	require.NoError(t, err)
	_, err = e.DeleteBefore(ctx, storetest.Base.Add(time.Second))
	require.NoError(t, err)

	var b bytes.Buffer
	for _, r := range fake.Requests() {
		fmt.Fprintf(&b, "### %s %s", r.Method, r.Path)
		if r.Query != "" {
			fmt.Fprintf(&b, "?%s", r.Query)
		}
		b.WriteString("\n")
		b.Write(r.Body)
		if len(r.Body) > 0 && r.Body[len(r.Body)-1] != '\n' {
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	path := filepath.Join("testdata", "elastic_requests.golden")
	if updateGolden() {
		require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to create it")
	require.Equal(t, string(want), b.String(), "requests changed; if on purpose, run with -update and review the diff")
}

func idOf(ev tracer.Event) string { return tracer.ComputeID(&ev) }

func TestElasticBulkItemOutcomes(t *testing.T) {
	e, fake := openElastic(t, tracer.ElasticOptions{MaxRetries: 3})
	ctx := t.Context()
	mk := func(uid string) tracer.Event {
		return tracer.Event{Type: tracer.Accepted, UID: uid, Time: storetest.Base}
	}
	existing, throttled, poison, flaky, stuck, fine := mk("existing"), mk("throttled"), mk("poison"), mk("flaky"), mk("stuck"), mk("fine")
	require.NoError(t, e.Write(ctx, []tracer.Event{existing}))

	fake.SetItemFault(func(_, id string, seen int) int {
		switch id {
		case idOf(throttled):
			if seen <= 2 {
				return http.StatusTooManyRequests
			}
		case idOf(poison):
			return http.StatusBadRequest
		case idOf(flaky):
			if seen == 1 {
				return http.StatusServiceUnavailable
			}
		case idOf(stuck):
			return http.StatusTooManyRequests
		}
		return 0
	})
	err := e.Write(ctx, []tracer.Event{existing, throttled, poison, flaky, stuck, fine})
	var be *tracer.BatchError
	require.True(t, errors.As(err, &be), "got %v", err)
	got := map[int]tracer.ItemError{}
	for _, it := range be.Items {
		got[it.Index] = it
	}
	require.Len(t, got, 2)
	require.False(t, got[2].Retriable, "400 is permanent")
	require.Equal(t, http.StatusBadRequest, got[2].Status)
	require.Contains(t, got[2].Reason, "mapper_parsing_exception")
	require.True(t, got[4].Retriable, "429 after the last retry stays retriable")

	require.ElementsMatch(t, []string{idOf(existing), idOf(throttled), idOf(flaky), idOf(fine)}, fake.IDs())
	st := e.Stats()
	require.EqualValues(t, 1, st.Rejected)
	require.EqualValues(t, 1, st.Conflicts, "the existing document answers 409, counted as stored")
	require.EqualValues(t, 4, st.Created)
	require.EqualValues(t, 5, st.BulkRequests, "the first write, then 1 + MaxRetries")
}

func TestElasticRequestFailures(t *testing.T) {
	events := func() []tracer.Event {
		return []tracer.Event{
			{Type: tracer.Accepted, UID: "a", Time: storetest.Base},
			{Type: tracer.Accepted, UID: "b", Time: storetest.Base},
		}
	}
	t.Run("500 then success is retried within Write", func(t *testing.T) {
		e, fake := openElastic(t, tracer.ElasticOptions{})
		fake.FailNext("bulk", 500, 502)
		require.NoError(t, e.Write(t.Context(), events()))
		require.Equal(t, 2, fake.Count())
		require.EqualValues(t, 2, e.Stats().FailedRequests)
	})
	t.Run("500 beyond the retries is a retriable error", func(t *testing.T) {
		e, fake := openElastic(t, tracer.ElasticOptions{MaxRetries: 1})
		fake.FailNext("bulk", 500, 500)
		err := e.Write(t.Context(), events())
		require.Error(t, err)
		require.True(t, tracer.Retriable(err))
		var be *tracer.BatchError
		require.False(t, errors.As(err, &be), "nothing is known per item")
		require.Zero(t, fake.Count())
	})
	t.Run("400 for the whole request is permanent", func(t *testing.T) {
		e, fake := openElastic(t, tracer.ElasticOptions{})
		fake.FailNext("bulk", 400)
		err := e.Write(t.Context(), events())
		var be *tracer.BatchError
		require.True(t, errors.As(err, &be), "got %v", err)
		require.Len(t, be.Items, 2)
		for _, it := range be.Items {
			require.False(t, it.Retriable)
		}
		require.EqualValues(t, 2, e.Stats().Rejected)
	})
	t.Run("timeout", func(t *testing.T) {
		e, fake := openElastic(t, tracer.ElasticOptions{RequestTimeout: 100 * time.Millisecond, MaxRetries: -1})
		fake.SetDelay(time.Second)
		err := e.Write(t.Context(), events())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.True(t, tracer.Retriable(err))
		// The fake stored them before the client gave up: writing again is
		// idempotent and answers 409.
		fake.SetDelay(0)
		require.NoError(t, e.Write(t.Context(), events()))
		require.Equal(t, 2, fake.Count())
		require.EqualValues(t, 2, e.Stats().Conflicts)
	})
	t.Run("connection refused", func(t *testing.T) {
		e := newElastic(t, tracer.ElasticOptions{Addresses: []string{"http://" + closedAddr(t)}, MaxRetries: 1})
		err := e.Write(t.Context(), events())
		require.Error(t, err)
		require.True(t, tracer.Retriable(err))
		require.Contains(t, err.Error(), "refused")
	})
	t.Run("missing product header", func(t *testing.T) {
		fake := esfake.RunT(t)
		fake.SetProductHeader(false)
		e := newElastic(t, tracer.ElasticOptions{Addresses: []string{fake.URL()}, MaxRetries: -1})
		require.ErrorContains(t, e.Start(t.Context()), "not Elasticsearch")
		err := e.Write(t.Context(), events())
		require.ErrorContains(t, err, "not Elasticsearch")
		require.True(t, tracer.Retriable(err))
		fake.SetProductHeader(true)
		require.NoError(t, e.Write(t.Context(), events()))
		require.Equal(t, 2, fake.Count())
	})
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestElasticCircuitBreaker(t *testing.T) {
	e, fake := openElastic(t, tracer.ElasticOptions{MaxRetries: -1, BreakerThreshold: 2, BreakerCooldown: time.Hour})
	fake.FailNext("bulk", 503, 503, 503)
	ev := []tracer.Event{{Type: tracer.Accepted, UID: "a", Time: storetest.Base}}
	require.Error(t, e.Write(t.Context(), ev))
	require.Error(t, e.Write(t.Context(), ev))
	sent := len(fake.Requests())
	err := e.Write(t.Context(), ev)
	require.ErrorIs(t, err, tracer.ErrCircuitOpen)
	require.True(t, tracer.Retriable(err))
	require.Len(t, fake.Requests(), sent, "an open breaker sends nothing")
	require.EqualValues(t, 1, e.Stats().BreakerOpened)
}

func TestElasticTemplate(t *testing.T) {
	_, fake := openElastic(t, tracer.ElasticOptions{IndexPrefix: "tpl"})
	raw, ok := fake.Template("tpl-events")
	require.True(t, ok)
	s := string(raw)
	for _, want := range []string{`"index_patterns":["tpl-events-*"]`, `"dynamic":"strict"`, `"uid":{"ignore_above":256,"type":"keyword"}`,
		`"time":{"format":"strict_date_optional_time||epoch_millis","type":"date"}`, `"ts":{"type":"long"}`} {
		require.Contains(t, s, want)
	}
	// Documents land in daily indices shaped by it.
	e, fake := openElastic(t, tracer.ElasticOptions{IndexPrefix: "tpl"})
	require.NoError(t, e.Write(t.Context(), goldenEvents()))
	require.Equal(t, []string{"tpl-events-2026.03.01", "tpl-events-2026.03.02"}, fake.Indices())
}

// TestPipelineOverElasticLosesNothing drives the pipeline into the
// Elasticsearch adapter while the fake cluster misbehaves, then heals it:
// every event must land exactly once, except those refused with 400, which
// are counted.
func TestPipelineOverElasticLosesNothing(t *testing.T) {
	const n = 300
	poisonUID := func(i int) bool { return i%50 == 7 }
	cases := []struct {
		name      string
		opts      tracer.ElasticOptions
		skipStart bool                                                 // no template put: the client must meet the fault on its first request
		start     func(t *testing.T, fake *esfake.Server, addr string) // break it (the fake may not be listening yet)
		heal      func(t *testing.T, fake *esfake.Server, addr string)
	}{
		{
			name:  "500 on every flush",
			start: func(_ *testing.T, f *esfake.Server, _ string) { f.FailNext("bulk", repeat(500, 1000)...) },
			heal:  func(_ *testing.T, f *esfake.Server, _ string) { f.FailNext("bulk") },
		},
		{
			name: "per-item 429 on first sight",
			start: func(_ *testing.T, f *esfake.Server, _ string) {
				f.SetItemFault(func(_, _ string, seen int) int {
					if seen <= 3 {
						return http.StatusTooManyRequests
					}
					return 0
				})
			},
			heal: func(*testing.T, *esfake.Server, string) {},
		},
		{
			name:  "timeouts",
			opts:  tracer.ElasticOptions{RequestTimeout: 50 * time.Millisecond},
			start: func(_ *testing.T, f *esfake.Server, _ string) { f.SetDelay(200 * time.Millisecond) },
			heal:  func(_ *testing.T, f *esfake.Server, _ string) { f.SetDelay(0) },
		},
		{
			name:      "missing product header",
			skipStart: true,
			start:     func(_ *testing.T, f *esfake.Server, _ string) { f.SetProductHeader(false) },
			heal:      func(_ *testing.T, f *esfake.Server, _ string) { f.SetProductHeader(true) },
		},
		{
			name:      "connection refused",
			skipStart: true,
			start:     func(*testing.T, *esfake.Server, string) {},
			heal:      func(t *testing.T, f *esfake.Server, addr string) { require.NoError(t, f.StartOn(addr)) },
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var events []tracer.Event
			var want, poison []string
			for i := range n {
				e := ev(i)
				e.ID = tracer.ComputeID(&e)
				if poisonUID(i) {
					poison = append(poison, e.ID)
				} else {
					want = append(want, e.ID)
				}
				events = append(events, e)
			}
			slices.Sort(want)

			fake := esfake.New()
			t.Cleanup(fake.Close)
			addr := closedAddr(t)
			if c.name != "connection refused" {
				require.NoError(t, fake.StartOn(addr))
			}
			opts := c.opts
			opts.Addresses = []string{"http://" + addr}
			opts.BreakerThreshold, opts.BreakerCooldown = 3, 20*time.Millisecond
			opts.MaxRetries = 1
			es := newElastic(t, opts)
			if !c.skipStart {
				require.NoError(t, es.Start(t.Context()))
			}
			c.start(t, fake, addr)
			fault := fake.ItemFault()
			fake.SetItemFault(func(index, id string, seen int) int {
				if slices.Contains(poison, id) {
					return http.StatusBadRequest
				}
				if fault != nil {
					return fault(index, id, seen)
				}
				return 0
			})

			p := newPipeline(t, es, t.TempDir(), tracer.Options{BatchSize: 50, FlushInterval: 10 * time.Millisecond,
				ReplayMinBackoff: 10 * time.Millisecond, ReplayMaxBackoff: 50 * time.Millisecond})
			p.Start()
			for i, e := range events {
				p.Record(e)
				if i == n/2 {
					time.Sleep(50 * time.Millisecond) // let some batches meet the fault
				}
			}
			time.Sleep(100 * time.Millisecond)
			c.heal(t, fake, addr)
			require.Eventually(t, func() bool {
				st := p.Stats()
				return st.OutboxBytes == 0 && st.QueueLen == 0 && st.Written+st.Replayed+st.Rejected == st.Recorded
			}, 20*time.Second, 10*time.Millisecond, "pipeline did not drain: %+v", p.Stats())
			require.NoError(t, p.Close(t.Context()))
			requireSameIDs(t, want, fake.IDs(), "every event but the 400s landed once")
			st := p.Stats()
			require.EqualValues(t, len(poison), st.Rejected, "400s are counted")
			require.EqualValues(t, n, st.Recorded)
			requireBalanced(t, st)
			t.Logf("pipeline %+v; elastic %+v", st, es.Stats())
		})
	}
}

func repeat(status, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = status
	}
	return out
}

// requireSameIDs compares sorted id lists and reports only the differences.
func requireSameIDs(t *testing.T, want, got []string, msg string) {
	t.Helper()
	var missing, extra []string
	for _, id := range want {
		if _, ok := slices.BinarySearch(got, id); !ok {
			missing = append(missing, id)
		}
	}
	for _, id := range got {
		if _, ok := slices.BinarySearch(want, id); !ok {
			extra = append(extra, id)
		}
	}
	require.True(t, len(missing) == 0 && len(extra) == 0 && len(want) == len(got),
		"%s: %d wanted, %d present; missing %v; unexpected %v", msg, len(want), len(got), missing, extra)
}

// TestElasticTemplateAfterLateStart: a cluster that cannot be reached when
// the sidecar starts gets its index template before the first document,
// so the daily indices are never created with dynamic mappings.
func TestElasticTemplateAfterLateStart(t *testing.T) {
	addr := closedAddr(t)
	e := newElastic(t, tracer.ElasticOptions{Addresses: []string{"http://" + addr}, IndexPrefix: "late", MaxRetries: -1})
	require.Error(t, e.Start(t.Context()), "nothing listens yet")
	require.Error(t, e.Write(t.Context(), goldenEvents()), "a write without the template fails (retriable): the batch waits in the outbox")

	fake := esfake.New()
	t.Cleanup(fake.Close)
	require.NoError(t, fake.StartOn(addr))
	require.NoError(t, e.Write(t.Context(), goldenEvents()))
	_, ok := fake.Template("late-events")
	require.True(t, ok, "the template was put before the documents")
	require.Equal(t, []string{"late-events-2026.03.01", "late-events-2026.03.02"}, fake.Indices())
}
