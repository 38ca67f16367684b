//go:build !race

// These tests drop, fail and kill brokers under the sidecar's producers.
// pulsar-client-go v0.19 has data races on its own reconnect paths
// (producer_partition.go grabCnx against internalSingleSend, and
// connection.go run against rpc_client.go RequestOnCnxNoWait), which the
// race detector reports as test failures; they run without -race (make
// test runs this package twice, once without -race for them).

package app

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// uidsOn collects the psc-uid of every message stored on a topic.
func uidsOn(t *testing.T, b *minipulsar.Server, full string) map[string]int {
	t.Helper()
	msgs, err := b.Messages(full)
	if err != nil {
		return map[string]int{}
	}
	out := map[string]int{}
	for _, m := range msgs {
		out[m.Properties[produce.PropUID]]++
	}
	return out
}

// TestSpoolWhileBrokerDown: with the only cluster down, a produce request
// is answered "spooled" (fsynced to the local spool) within the request
// deadline; once the broker is back the replayer stores it with its uid.
func TestSpoolWhileBrokerDown(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.HTTP.RequestTimeout = 3 * time.Second
		c.Durability.AttemptTimeout = 500 * time.Millisecond
	})
	path, full := newTopic(t)
	require.Equal(t, http.StatusOK, h.produceJSON(path, `{"messages":[{"payload":"warm-up"}]}`).Status)

	require.NoError(t, h.broker.Close()) // a killed broker: connections drop, nothing listens
	res := h.produceJSON(path, `{"messages":[{"payload":"charge","key":"o-1","idempotencyKey":"spool-1"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	r := res.Results[0]
	require.Equal(t, produce.StatusSpooled, r.Status, res.Raw)

	// A retry while still down answers the same result from the idempotency store.
	again := h.produceJSON(path, `{"messages":[{"payload":"charge","key":"o-1","idempotencyKey":"spool-1"}]}`)
	require.Equal(t, http.StatusOK, again.Status, again.Raw)
	require.Equal(t, r.UID, again.Results[0].UID)
	require.True(t, again.Results[0].Duplicate)

	require.NoError(t, h.broker.Start()) // same ports, same data
	require.Eventually(t, func() bool { return uidsOn(t, h.broker, full)[r.UID] >= 1 }, 20*time.Second, 100*time.Millisecond,
		"the spooled message is replayed once the broker is back")
	// Copies beyond one can only carry the same uid (an attempt the broker
	// stored after the sidecar gave up on it); consumers drop them.
	t.Logf("copies of the spooled message on the broker: %d", uidsOn(t, h.broker, full)[r.UID])
}

// TestFailoverToDRCluster: with a disaster-recovery cluster configured, a
// dead primary sends messages there ("failover", cluster dr), and the
// sidecar moves back to the primary when it returns.
func TestFailoverToDRCluster(t *testing.T) {
	dr := minipulsar.RunT(t)
	h := start(t, func(c *config.Config) {
		c.Pulsar.DRURL = dr.ServiceURL()
		c.HTTP.RequestTimeout = 3 * time.Second
		c.Durability.AttemptTimeout = 500 * time.Millisecond
	})
	path, full := newTopic(t)
	require.Equal(t, http.StatusOK, h.produceJSON(path, `{"messages":[{"payload":"warm-up"}]}`).Status)

	require.NoError(t, h.broker.Close())
	var failedOver string
	require.Eventually(t, func() bool {
		res := h.produceJSON(path, `{"messages":[{"payload":"during outage"}]}`)
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		r := res.Results[0]
		if r.Status == produce.StatusFailover {
			require.Equal(t, "dr", r.Cluster)
			failedOver = r.UID
			return true
		}
		return false
	}, 15*time.Second, 50*time.Millisecond, "messages fail over to the DR cluster")
	require.Equal(t, 1, uidsOn(t, dr, full)[failedOver], "the DR cluster holds the failed-over message")

	require.NoError(t, h.broker.Start())
	require.Eventually(t, func() bool {
		res := h.produceJSON(path, `{"messages":[{"payload":"after"}]}`)
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		return res.Results[0].Status == produce.StatusPersisted && res.Results[0].Cluster != "dr"
	}, 30*time.Second, 200*time.Millisecond, "back to the primary once it is healthy")
}

// TestBrokerFailure: while the broker refuses every send, the request is
// still answered 200 within its deadline: the message is "spooled" (fsynced
// to the local spool). A retry with the same idempotency key returns the
// same result; once the broker stores again, the replayer puts the message
// on the topic with its uid.
func TestBrokerFailure(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.HTTP.RequestTimeout = time.Second
	})
	p, full := newTopic(t)
	// Create the producer first, so the fault hits the message.
	require.Equal(t, http.StatusOK, h.produceJSON(p, `{"messages":[{"payload":"warm-up"}]}`).Status)

	h.broker.FailNextSends(1 << 30)
	body := `{"messages":[{"payload":"charge","idempotencyKey":"k-fail"}]}`
	res := h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Len(t, res.Results, 1)
	assert.Equal(t, produce.StatusSpooled, res.Results[0].Status)
	uid := res.Results[0].UID

	res = h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	assert.Equal(t, uid, res.Results[0].UID, "the retry is answered from the idempotency store")
	assert.True(t, res.Results[0].Duplicate)

	h.broker.FailNextSends(0)
	require.Eventually(t, func() bool { return len(h.readAll(full)) >= 2 }, 15*time.Second, 100*time.Millisecond,
		"the replayer stores the spooled message once the broker takes sends again")
	// Copies beyond one can only carry the same uid (an attempt the broker
	// stored after the sidecar gave up on it); never one with another uid.
	for _, m := range h.readAll(full)[1:] {
		assert.Equal(t, uid, m.Properties()[produce.PropUID])
	}
}
