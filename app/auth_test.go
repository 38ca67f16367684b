package app

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

const (
	billingToken = "billing-secret-token"
	opsToken     = "ops-secret-token"
	slowToken    = "slow-secret-token"
)

func withApps(c *config.Config) {
	c.Apps = []config.App{
		{Name: "billing", TokenSHA256: proxy.HashToken(billingToken), Produce: []string{"pay/settle/*", "audit/*"}},
		{Name: "ops", TokenSHA256: strings.ToUpper(proxy.HashToken(opsToken)), Produce: []string{"ops/jobs/run"}},
		// 0.001 messages/s: the bucket does not refill during the test.
		{Name: "slow", TokenSHA256: proxy.HashToken(slowToken), Produce: []string{"*"},
			RateLimit: config.RateLimit{MessagesPerSecond: 0.001, Burst: 3}},
	}
}

// TestAuth: tokens identify apps, permissions are per topic with
// namespace and tenant wildcards, and the app travels as psc-app.
func TestAuth(t *testing.T) {
	h := start(t, withApps)
	body := `{"messages":[{"payload":"x"}]}`
	for _, tc := range []struct {
		name   string
		auth   string // Authorization header; "" sends none
		path   string
		status int
		code   string
	}{
		{name: "no token", path: "pay/settle/a", status: 401, code: proxy.CodeUnauthenticated},
		{name: "not bearer", auth: "Basic " + billingToken, path: "pay/settle/a", status: 401, code: proxy.CodeUnauthenticated},
		{name: "empty bearer", auth: "Bearer ", path: "pay/settle/a", status: 401, code: proxy.CodeUnauthenticated},
		{name: "unknown token", auth: "Bearer nope", path: "pay/settle/a", status: 401, code: proxy.CodeInvalidToken},
		{name: "token hash instead of token", auth: "Bearer " + proxy.HashToken(billingToken), path: "pay/settle/a", status: 401, code: proxy.CodeInvalidToken},
		{name: "namespace wildcard", auth: "Bearer " + billingToken, path: "pay/settle/a", status: 200},
		{name: "scheme is case-insensitive", auth: "bearer " + billingToken, path: "pay/settle/b", status: 200},
		{name: "tenant wildcard", auth: "Bearer " + billingToken, path: "audit/any/topic", status: 200},
		{name: "other namespace", auth: "Bearer " + billingToken, path: "pay/refund/a", status: 403, code: proxy.CodeForbidden},
		{name: "other tenant", auth: "Bearer " + billingToken, path: "ops/jobs/run", status: 403, code: proxy.CodeForbidden},
		{name: "exact topic", auth: "Bearer " + opsToken, path: "ops/jobs/run", status: 200},
		{name: "exact topic only", auth: "Bearer " + opsToken, path: "ops/jobs/run2", status: 403, code: proxy.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := jsonHeader()
			if tc.auth != "" {
				hdr.Set("Authorization", tc.auth)
			}
			res := h.do(http.MethodPost, "/v1/topics/"+tc.path+"/messages", hdr, []byte(body))
			require.Equal(t, tc.status, res.Status, res.Raw)
			assert.Equal(t, tc.code, res.code())
		})
	}

	p, full := newTopic(t)
	res := h.produceJSON(p, body, "Authorization", "Bearer "+billingToken)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	msgs := h.readAll(full)
	require.Len(t, msgs, 1)
	assert.Equal(t, "billing", msgs[0].Properties()[produce.PropApp])
	// Health and metrics need no token.
	assert.Equal(t, http.StatusOK, h.do(http.MethodGet, "/healthz", nil, nil).Status)
}

// TestIdempotencyKeysArePerApp: two apps may use the same key for
// different messages.
func TestIdempotencyKeysArePerApp(t *testing.T) {
	h := start(t, withApps)
	p, _ := newTopic(t)
	a := h.produceJSON(p, `{"messages":[{"payload":"a","idempotencyKey":"same"}]}`, "Authorization", "Bearer "+billingToken)
	require.Equal(t, http.StatusOK, a.Status, a.Raw)
	b := h.produceJSON(p, `{"messages":[{"payload":"b","idempotencyKey":"same"}]}`, "Authorization", "Bearer "+slowToken)
	require.Equal(t, http.StatusOK, b.Status, b.Raw)
	assert.NotEqual(t, a.Results[0].UID, b.Results[0].UID)
}

// TestRateLimit: an app over its bucket gets 429 with Retry-After; the
// bucket counts messages, not requests; other apps are not affected.
func TestRateLimit(t *testing.T) {
	h := start(t, withApps)
	p, full := newTopic(t)
	auth := []string{"Authorization", "Bearer " + slowToken}
	res := h.produceJSON(p, `{"messages":[{"payload":"1"},{"payload":"2"}]}`, auth...)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	res = h.produceJSON(p, `{"messages":[{"payload":"3"},{"payload":"4"}]}`, auth...)
	require.Equal(t, http.StatusTooManyRequests, res.Status, res.Raw)
	assert.Equal(t, proxy.CodeRateLimited, res.code())
	assert.NotEmpty(t, res.RetryAfter)
	assert.NotEqual(t, "0", res.RetryAfter)
	res = h.produceJSON(p, `{"messages":[{"payload":"3"}]}`, auth...)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	res = h.do(http.MethodPost, "/v1/topics/"+p+"/messages", http.Header{"Authorization": {"Bearer " + slowToken}}, []byte("raw"))
	require.Equal(t, http.StatusTooManyRequests, res.Status, res.Raw)
	assert.Equal(t, proxy.CodeRateLimited, res.code())

	res = h.produceJSON(p, `{"messages":[{"payload":"other app"}]}`, "Authorization", "Bearer "+billingToken)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	assert.Len(t, h.readAll(full), 4, "refused requests wrote nothing")
}

// TestProtectedMode: without apps, a loopback listener serves everyone as
// app "dev"; any other listener refuses to start.
func TestProtectedMode(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:8088"} {
		cfg := config.Default()
		cfg.Listen = listen
		_, err := New(cfg)
		require.Error(t, err, listen)
		assert.ErrorIs(t, err, config.ErrInvalid)
		assert.Contains(t, err.Error(), "no apps are configured", listen)
	}
	for _, listen := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0", "127.0.0.2:0"} {
		cfg := config.Default()
		cfg.Listen = listen
		_, err := New(cfg)
		require.NoError(t, err, listen)
	}
	// With apps, any listener is allowed.
	cfg := config.Default()
	cfg.Listen = "0.0.0.0:0"
	withApps(&cfg)
	_, err := New(cfg)
	require.NoError(t, err)
}
