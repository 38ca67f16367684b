//go:build !race

// Fails the broker's sends under the sidecar's producers; see
// durable_test.go for why these tests run without -race.

package app

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// TestConsoleSpoolStats: while the broker refuses sends, stats/spool counts
// the spooled messages and stats/clusters shows the primary's breaker
// open; once the broker takes sends again the spool empties.
func TestConsoleSpoolStats(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.HTTP.RequestTimeout = time.Second
	})
	p, _ := newTopic(t)
	require.Equal(t, http.StatusOK, h.produceJSON(p, `{"messages":[{"payload":"warm-up"}]}`).Status)

	h.broker.FailNextSends(1 << 30)
	for i := range 3 {
		res := h.produceJSON(p, `{"messages":[{"payload":"charge"}]}`)
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		require.Equal(t, produce.StatusSpooled, res.Results[0].Status, "message %d: %s", i, res.Raw)
	}
	type spoolAnswer struct {
		Data *struct {
			Messages int64      `json:"messages"`
			Bytes    int64      `json:"bytes"`
			Oldest   *time.Time `json:"oldest"`
		} `json:"data"`
	}
	var sp spoolAnswer
	raw := h.consoleJSON("/stats/spool", http.StatusOK, &sp)
	require.NotNil(t, sp.Data, raw)
	require.EqualValues(t, 3, sp.Data.Messages, raw)
	require.Positive(t, sp.Data.Bytes, raw)
	require.NotNil(t, sp.Data.Oldest, raw)

	var cl struct {
		Data []struct {
			Healthy bool   `json:"healthy"`
			Breaker string `json:"breaker"`
		} `json:"data"`
	}
	require.Eventually(t, func() bool {
		h.consoleJSON("/stats/clusters", http.StatusOK, &cl)
		return len(cl.Data) == 1 && cl.Data[0].Breaker != "closed" && !cl.Data[0].Healthy
	}, 10*time.Second, 50*time.Millisecond, "the primary's breaker opens")

	h.broker.FailNextSends(0)
	require.Eventually(t, func() bool {
		sp = spoolAnswer{}
		h.consoleJSON("/stats/spool", http.StatusOK, &sp)
		return sp.Data != nil && sp.Data.Messages == 0
	}, 20*time.Second, 100*time.Millisecond, "the replayer empties the spool")
}
