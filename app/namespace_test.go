package app

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// TestProduceToMissingNamespace: against a broker that, like Pulsar,
// requires tenants and namespaces to exist, a produce to a missing
// namespace is a 404 TOPIC_NOT_FOUND at once (not a 5xx, not spooled and
// replayed for ever); once the operator creates the namespace the same
// request is stored.
func TestProduceToMissingNamespace(t *testing.T) {
	broker := minipulsar.RunOptionsT(t, minipulsar.Options{Namespaces: minipulsar.RequireNamespaces})
	require.NoError(t, broker.CreateNamespace("public/psc-delay"))
	rds := testredis.Start(t)
	a, err := New(testConfig(t, broker, rds), WithLogger(testLogger(t)), WithRecorder(&recorder{}))
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		require.NoError(t, a.Stop(ctx))
	})
	h := &harness{t: t, broker: broker, redis: rds, app: a, base: "http://" + a.Addr(), http: &http.Client{Timeout: 30 * time.Second}}

	body := `{"messages":[{"payload":"charge","idempotencyKey":"ns-1"}]}`
	begin := time.Now()
	res := h.produceJSON("billing/payments/charges", body)
	require.Equal(t, http.StatusNotFound, res.Status, res.Raw)
	assert.Equal(t, proxy.CodeTopicNotFound, res.code())
	assert.Contains(t, res.Error.Message, "namespace")
	assert.Less(t, time.Since(begin), 5*time.Second, "answered at once, not after the spool")
	spool := h.do(http.MethodGet, "/metrics", nil, nil)
	assert.Contains(t, spool.Raw, "psc_spool_depth 0", "nothing was spooled")

	require.NoError(t, broker.CreateTenant("billing"))
	require.NoError(t, broker.CreateNamespace("billing/payments"))
	res = h.produceJSON("billing/payments/charges", body)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	assert.Equal(t, "persisted", string(res.Results[0].Status))
	assert.False(t, res.Results[0].DuplicateRisk, "the refused attempt stored nothing: its claim was forgotten")
}
