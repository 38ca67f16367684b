package app

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// TestTraceDeferredProduceRunArrivesInStore: with an ingest budget so small
// that any produce load counts as busy, the events of a produce run are
// parked in the outbox rather than written at once, and once the load stops
// every one of them arrives in the SQLite store: exactly accepted and
// persisted for each message, 2 x messages in all, nothing dropped or lost.
func TestTraceDeferredProduceRunArrivesInStore(t *testing.T) {
	const (
		// Long enough (about a second here) for the governor to sample the
		// arrival rate a few times: a run shorter than its flush tick is
		// written at once.
		n       = 4000
		workers = 16
	)
	h := startApp(t, func(c *config.Config) {
		c.Trace.IngestBudget = 0.0005 // 0.5 ms of CPU a second: busy at a few dozen events/s
		// Whatever the test machine's CPU use: this test is about what
		// deferral keeps, not about when it starts.
		c.Trace.IngestBusyCPU = -1
	})
	require.NotNil(t, h.app.pipeline)
	store, ok := h.app.traceStore.(*tracer.SQLite)
	require.True(t, ok)

	_, _, uids := produceLoad(t, h, n, workers)
	require.Len(t, uids, n)

	require.Eventually(t, func() bool {
		st := h.app.pipeline.Stats()
		return st.Recorded == 2*n && st.QueueLen == 0 && st.OverflowLen == 0 && st.OutboxBytes == 0 &&
			st.Written+st.Replayed == st.Recorded
	}, 30*time.Second, 20*time.Millisecond, "every event stored: %+v", h.app.pipeline.Stats())
	st := h.app.pipeline.Stats()
	t.Logf("pipeline %+v", st)
	require.Positive(t, st.Deferred, "the budget parked events in the outbox: %+v", st)
	require.Positive(t, st.Replayed, "%+v", st)
	require.Zero(t, st.Dropped(), "%+v", st)
	require.Zero(t, st.Rejected, "%+v", st)
	require.Zero(t, st.SpillFailed, "%+v", st)
	require.Zero(t, st.Lag, "%+v", st)

	count, err := store.Count(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 2*n, count, "events in the store")
	for _, uid := range uids {
		res, err := store.ByUID(context.Background(), uid, tracer.Page{})
		require.NoError(t, err)
		types := make([]string, 0, len(res.Events))
		for _, ev := range res.Events {
			types = append(types, string(ev.Type))
		}
		slices.Sort(types)
		require.Equal(t, []string{"accepted", "persisted"}, types, "events of uid %s", uid)
	}
}
