//go:build !race

// These tests drop and kill TLS brokers under the sidecar's clients, as
// durable_test.go does, and run without -race for the same reason:
// pulsar-client-go v0.19's own reconnect paths race (make test runs this
// package once without -race for them).

package app

import (
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testcert"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// TestPulsarTLSWithRotatedToken: the sidecar produces and consumes through
// pulsar+ssl:// with hostname verification on, authenticated with a token
// read from a file; after the file is rotated and SIGHUP-style reload, the
// broker (which now accepts only the new token) sees the new token on the
// next connections and produce keeps working.
func TestPulsarTLSWithRotatedToken(t *testing.T) {
	ca := testcert.NewCA(t, "pulsar-ca")
	var current atomic.Value
	current.Store("token-one")
	broker := minipulsar.RunOptionsT(t, minipulsar.Options{
		TLS:          testcert.ServerTLS(ca.Server(t, "broker", "127.0.0.1", "localhost"), nil),
		Authenticate: minipulsar.RequireToken(func(tok string) bool { return tok == current.Load() || tok == "reader" }),
	})
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("token-one\n"), 0o600))
	hup := make(chan os.Signal, 1)
	h := startOnBroker(t, broker, func(c *config.Config) {
		c.Pulsar.TLS.TrustCertsFile = ca.CertFile
		c.Pulsar.AuthTokenFile = tokenFile
		c.Secrets.ReloadInterval = 0 // the signal only
	}, WithReloadSignal(hup))
	require.True(t, h.app.cfg.Pulsar.TLS.ValidateHostname, "the default")

	p, full := newTopic(t)
	sub := h.register(p, "tls", `{"initialPosition":"earliest"}`)
	r := h.produceJSON(p, `{"messages":[{"payload":"one","tags":["A"]}]}`)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "persisted", string(r.Results[0].Status))
	got := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":10,"waitMs":5000}`))
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	assert.Contains(t, got.Raw, `"payload":"one"`)
	for _, c := range broker.Connects() {
		assert.True(t, c.TLS)
		assert.Equal(t, "token-one", c.Data, "every connection so far carries the first token")
	}
	// The admin REST over https: the per-tag backlog reads it.
	bl := h.do(http.MethodGet, sub+"/backlog", nil, nil)
	assert.Equal(t, http.StatusOK, bl.Status, bl.Raw)

	// Rotate: the broker takes only the new token from now on.
	require.NoError(t, os.WriteFile(tokenFile, []byte("token-two\n"), 0o600))
	current.Store("token-two")
	hup <- os.Interrupt // any signal value: the app re-reads on receive
	require.Eventually(t, func() bool { return h.app.primaryConn.token.Value() == "token-two" }, 5*time.Second, 10*time.Millisecond)
	before := len(broker.Connects())
	broker.DropConnections()
	r = h.produceJSON(p, `{"messages":[{"payload":"two","tags":["A"]}]}`)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "persisted", string(r.Results[0].Status), "the primary took it with the new token")
	after := broker.Connects()[before:]
	require.NotEmpty(t, after)
	for _, c := range after {
		assert.Equal(t, "token-two", c.Data, "new connections carry the rotated token: %v", tokensAt(broker))
	}

	msgs, err := broker.Messages(full)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	assert.Equal(t, "two", string(msgs[1].Payload))

	// A file caught empty mid-rotation keeps the last good token.
	require.NoError(t, os.WriteFile(tokenFile, nil, 0o600))
	h.app.ReloadSecrets()
	assert.Equal(t, "token-two", h.app.primaryConn.token.Value())
}

// TestFailoverToDRClusterOverTLS: the disaster-recovery cluster has its
// own TLS and credential settings: with the primary dead, messages fail
// over to a pulsar+ssl:// DR broker that requires mutual TLS and the token
// from pulsar.drAuthTokenFile, and that broker sees both.
func TestFailoverToDRClusterOverTLS(t *testing.T) {
	ca := testcert.NewCA(t, "dr-ca")
	client := ca.Client(t, "sidecar-dr")
	dr := minipulsar.RunOptionsT(t, minipulsar.Options{
		TLS:          testcert.ServerTLS(ca.Server(t, "dr-broker", "127.0.0.1"), ca),
		Authenticate: minipulsar.RequireToken(func(tok string) bool { return tok == "dr-token" }),
	})
	tokenFile := filepath.Join(t.TempDir(), "dr-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("dr-token"), 0o600))
	h := start(t, func(c *config.Config) {
		c.Pulsar.DRURL = dr.ServiceURL()
		c.Pulsar.DRAuthTokenFile = tokenFile
		c.Pulsar.DRTLS = config.PulsarTLS{TrustCertsFile: ca.CertFile, ValidateHostname: true,
			CertFile: client.CertFile, KeyFile: client.KeyFile}
		c.HTTP.RequestTimeout = 3 * time.Second
		c.Durability.AttemptTimeout = 500 * time.Millisecond
	})
	_, body := readyz(t, h)
	checks, _ := body["checks"].(map[string]any)
	assert.Equal(t, "ok", checks["drPulsarTLS"])
	require.NoError(t, h.broker.Close())
	path, full := newTopic(t)
	var uid string
	require.Eventually(t, func() bool {
		res := h.produceJSON(path, `{"messages":[{"payload":"to dr"}]}`)
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		uid = res.Results[0].UID
		return res.Results[0].Status == "failover"
	}, 15*time.Second, 50*time.Millisecond, "messages fail over to the TLS DR cluster")
	require.Equal(t, 1, uidsOn(t, dr, full)[uid])
	conns := dr.Connects()
	require.NotEmpty(t, conns)
	for _, c := range conns {
		assert.Equal(t, "dr-token", c.Data)
		require.NotNil(t, c.ClientCertificate, "mutual TLS")
		assert.Equal(t, "sidecar-dr", c.ClientCertificate.Subject.CommonName)
	}
	require.NoError(t, h.broker.Start()) // a clean shutdown
}
