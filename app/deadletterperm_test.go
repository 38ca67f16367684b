package app

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

const readerToken = "reader-token"

// TestDeadLetterTopicPermission: the sidecar writes dead letters on the
// app's behalf, so a registration may name only a dead-letter topic the app
// may produce to (issue 12: any topic was accepted, so an app allowed to
// read a topic could inject messages into it by nacking). A refused
// registration stores nothing; the default <topic>-<sub>-DLQ and a
// permitted topic are accepted; internal topics are refused even to an app
// whose patterns match them.
func TestDeadLetterTopicPermission(t *testing.T) {
	h := start(t, func(c *config.Config) {
		withPublicApp(c)
		c.Apps = append(c.Apps, config.App{Name: "reader", TokenSHA256: proxy.HashToken(readerToken),
			Consume: []string{"pay/settle/*"}, Produce: []string{"pay/settle/reader-dlq"}})
	})
	reader, public := bearer(readerToken), bearer(publicToken)
	sub := "/v1/topics/pay/settle/charges/subscriptions/"

	for _, dlq := range []string{"pay/settle/refunds", "audit/x/y", "charges-copy"} {
		res := h.do(http.MethodPut, sub+"named", reader, []byte(`{"deadLetterTopic":"`+dlq+`"}`))
		require.Equal(t, http.StatusForbidden, res.Status, "%s: %s", dlq, res.Raw)
		require.Equal(t, proxy.CodeForbidden, res.code(), res.Raw)
		require.Contains(t, res.Raw, "may not produce to it")
		got := h.do(http.MethodGet, sub+"named", reader, nil)
		require.Equal(t, http.StatusNotFound, got.Status, "nothing registered after %s: %s", dlq, got.Raw)
	}
	res := h.do(http.MethodPut, "/v1/topics/public/default/orders/subscriptions/s", public,
		[]byte(`{"deadLetterTopic":"public/psc-delay/level-1s"}`))
	require.Equal(t, http.StatusForbidden, res.Status, res.Raw)
	require.Equal(t, proxy.CodeForbidden, res.code(), res.Raw)

	res = h.do(http.MethodPut, sub+"named", reader, []byte(`{"deadLetterTopic":"reader-dlq"}`))
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	require.Contains(t, res.Raw, `"deadLetterTopic":"pay/settle/reader-dlq"`)
	res = h.do(http.MethodPut, sub+"default", reader, []byte(`{"deadLetterTopic":"charges-default-DLQ"}`))
	require.Equal(t, http.StatusCreated, res.Status, "the default name, spelled out: %s", res.Raw)
	res = h.do(http.MethodPut, sub+"plain", reader, []byte(`{}`))
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	require.Contains(t, res.Raw, `"deadLetterTopic":"pay/settle/charges-plain-DLQ"`)
	// A malformed name is still the 400 it was.
	res = h.do(http.MethodPut, sub+"bad", reader, []byte(`{"deadLetterTopic":"a/b"}`))
	require.Equal(t, http.StatusBadRequest, res.Status, res.Raw)
}
