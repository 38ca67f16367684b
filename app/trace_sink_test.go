package app

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer/esfake"
)

// TestTraceSinkDownThenBack: with the Elasticsearch trace store refusing
// connections at start and then failing every bulk write, the sidecar keeps
// producing at the speed of a run with tracing off (the events spill to the
// outbox, none dropped); once the cluster is healthy again, every event of
// every produced message arrives exactly once.
//
// The outage is refused connections, then whole-request 500s (more than the
// circuit breaker's threshold, so it opens), then per-item 503s. The breaker's
// cooldown and the replay backoff are set short through the app config
// (trace.elasticsearch.breakerCooldown, trace.replayMaxBackoff): with the
// defaults (30 s each) recovery after an outage takes up to 30 s.
func TestTraceSinkDownThenBack(t *testing.T) {
	const (
		n       = 300
		workers = 8
	)

	// Baseline: the same load with tracing off.
	base := startApp(t, func(c *config.Config) { c.Trace.Store = "off" })
	baseTotal, baseLat, _ := produceLoad(t, base, n, workers)
	t.Logf("trace off: %d messages in %v, p50 %v, p99 %v", n, baseTotal, pct(baseLat, 50), pct(baseLat, 99))

	// The cluster is down when the sidecar starts: nothing listens there.
	fake := esfake.New()
	t.Cleanup(fake.Close)
	addr := unusedAddr(t)
	h := startApp(t, func(c *config.Config) {
		c.Trace.Store = "elasticsearch"
		c.Trace.Elasticsearch.Addresses = "http://" + addr
		c.Trace.Elasticsearch.BreakerThreshold = 3
		c.Trace.Elasticsearch.BreakerCooldown = 300 * time.Millisecond
		c.Trace.ReplayMinBackoff = 50 * time.Millisecond
		c.Trace.ReplayMaxBackoff = 500 * time.Millisecond
	})
	require.NotNil(t, h.app.pipeline)

	// It comes up failing: whole bulk requests answered 500, then every item 503.
	fake.FailNext("bulk", 500, 500, 500, 500, 500, 500)
	fake.SetItemFault(func(string, string, int) int { return http.StatusServiceUnavailable })
	require.NoError(t, fake.StartOn(addr))

	total, lat, uids := produceLoad(t, h, n, workers)
	p99, baseP99 := pct(lat, 99), pct(baseLat, 99)
	t.Logf("sink failing: %d messages in %v, p50 %v, p99 %v", n, total, pct(lat, 50), p99)
	require.LessOrEqual(t, p99, max(500*time.Millisecond, 3*baseP99),
		"p99 with the sink failing (trace off: %v)", baseP99)
	require.LessOrEqual(t, total, 2*baseTotal+time.Second,
		"total time with the sink failing against trace off (%v)", baseTotal)

	// The events went to the outbox, none dropped, none stored yet; the
	// outage lasts until the replayer has also failed a few times (backing
	// off), not only the writer's first batch.
	require.Eventually(t, func() bool {
		st := h.app.pipeline.Stats()
		return st.QueueLen == 0 && st.OverflowLen == 0 && st.Spilled >= 2*n && st.SinkFailures >= 4
	}, 15*time.Second, 20*time.Millisecond, "events spill to the outbox and replays fail: %+v", h.app.pipeline.Stats())
	es, ok := h.app.traceStore.(*tracer.Elastic)
	require.True(t, ok)
	require.Positive(t, es.Stats().BreakerOpened, "the outage opened the circuit breaker: %+v", es.Stats())
	st := h.app.pipeline.Stats()
	require.EqualValues(t, 2*n, st.Recorded, "accepted and persisted per message: %+v", st)
	require.Zero(t, st.Dropped(), "%+v", st)
	require.Zero(t, st.SpillFailed, "%+v", st)
	require.Zero(t, st.Written, "%+v", st)
	require.NotZero(t, st.SinkFailures, "%+v", st)
	require.Positive(t, st.OutboxBytes, "%+v", st)
	require.Zero(t, fake.Count(), "the failing cluster stored nothing")

	// Back: the outbox is replayed within a few cooldowns and backoffs.
	fake.ClearFaults()
	back := time.Now()
	require.Eventually(t, func() bool {
		st := h.app.pipeline.Stats()
		return st.OutboxBytes == 0 && st.QueueLen == 0 && st.OverflowLen == 0 &&
			st.Written+st.Replayed+st.Rejected == st.Recorded && fake.Count() >= 2*n
	}, 10*time.Second, 20*time.Millisecond, "the outbox drains once the cluster is back: %+v; %d stored",
		h.app.pipeline.Stats(), fake.Count())
	t.Logf("recovered %v after the cluster came back", time.Since(back))

	st = h.app.pipeline.Stats()
	t.Logf("pipeline %+v", st)
	require.Zero(t, st.Dropped(), "%+v", st)
	require.Zero(t, st.Rejected, "%+v", st)
	require.Zero(t, st.SpillFailed, "%+v", st)
	require.Zero(t, st.Corrupt, "%+v", st)
	require.EqualValues(t, 2*n, st.Spilled, "every event went through the outbox: %+v", st)
	require.EqualValues(t, 2*n, st.Replayed, "%+v", st)

	// Exactly accepted + persisted for every uid, once each.
	got := map[string][]string{} // uid -> event types
	ids := fake.IDs()
	for _, ix := range fake.Indices() {
		for _, id := range ids {
			doc, ok := fake.Doc(ix, id)
			if !ok {
				continue
			}
			uid, _ := doc["uid"].(string)
			typ, _ := doc["type"].(string)
			got[uid] = append(got[uid], typ)
		}
	}
	require.Len(t, ids, 2*n, "documents stored")
	require.Len(t, got, n, "uids stored")
	for _, uid := range uids {
		types := got[uid]
		slices.Sort(types)
		require.Equal(t, []string{"accepted", "persisted"}, types, "events of uid %s", uid)
	}
}

// produceLoad posts n single-message batches from workers goroutines to a
// fresh topic and returns the wall time, each request's latency (sorted)
// and the uids. Every request must be answered 200.
func produceLoad(t *testing.T, h *harness, n, workers int) (time.Duration, []time.Duration, []string) {
	t.Helper()
	path, _ := newTopic(t)
	// One request first so that topic creation and connection setup are
	// not measured.
	warm := h.produceJSON(path, `{"messages":[{"payload":"warm-up"}]}`)
	require.Equal(t, http.StatusOK, warm.Status, warm.Raw)
	uids := []string{warm.Results[0].UID}
	n--

	type result struct {
		lat    time.Duration
		status int
		uid    string
		raw    string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	next := make(chan int)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := range next {
				t0 := time.Now()
				res := h.produceJSON(path, fmt.Sprintf(`{"messages":[{"payload":"m-%d","key":"k-%d"}]}`, i, i%17))
				r := result{lat: time.Since(t0), status: res.Status, raw: res.Raw}
				if len(res.Results) == 1 {
					r.uid = res.Results[0].UID
				}
				results[i] = r
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	total := time.Since(start)

	lat := make([]time.Duration, 0, n)
	for i, r := range results {
		require.Equal(t, http.StatusOK, r.status, "request %d: %s", i, r.raw)
		require.NotEmpty(t, r.uid, "request %d: %s", i, r.raw)
		lat = append(lat, r.lat)
		uids = append(uids, r.uid)
	}
	slices.Sort(lat)
	return total, lat, uids
}

// pct returns the p-th percentile of sorted latencies.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// unusedAddr returns a loopback address nothing listens on (yet).
func unusedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
