package app

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testcert"
)

// get fetches url with c and returns the status and body.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	res, err := c.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(body)
}

// TestHTTPSDataPlane: with http.tlsCertFile the data plane serves HTTPS
// only; a rotated certificate is served to new connections after a reload,
// and a half-written one is not taken.
func TestHTTPSDataPlane(t *testing.T) {
	ca := testcert.NewCA(t, "http-ca")
	first := ca.Server(t, "sidecar-1", "127.0.0.1")
	h := start(t, func(c *config.Config) {
		c.HTTP.TLSCertFile, c.HTTP.TLSKeyFile = first.CertFile, first.KeyFile
		c.Secrets.ReloadInterval = 0
	})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}}
	h.base, h.http = "https://"+h.app.Addr(), client

	p, _ := newTopic(t)
	r := h.produceJSON(p, `{"messages":[{"payload":"over https"}]}`)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	assert.Equal(t, "persisted", string(r.Results[0].Status))

	code, body := get(t, &http.Client{Timeout: 5 * time.Second}, "http://"+h.app.Addr()+"/healthz")
	assert.Equal(t, http.StatusBadRequest, code, "plain HTTP to the TLS port is refused")
	assert.Contains(t, body, "HTTPS server")

	served := func() string {
		conn, err := tls.Dial("tcp", h.app.Addr(), &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12})
		require.NoError(t, err)
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	assert.Equal(t, "sidecar-1", served())

	// Rotation: Kubernetes rewrites both files; the next connections get the new pair.
	second := ca.Server(t, "sidecar-2", "127.0.0.1")
	copyFile(t, second.CertFile, first.CertFile)
	copyFile(t, second.KeyFile, first.KeyFile)
	h.app.ReloadSecrets()
	assert.Equal(t, "sidecar-2", served())

	// A certificate without its key (a rotation caught half-way) is not taken.
	third := ca.Server(t, "sidecar-3", "127.0.0.1")
	copyFile(t, third.CertFile, first.CertFile)
	h.app.ReloadSecrets()
	assert.Equal(t, "sidecar-2", served(), "the last good pair stays")
	code, _ = get(t, client, h.base+"/healthz")
	assert.Equal(t, http.StatusOK, code)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, data, 0o600))
}

// TestManagementListener: with management.listen, /metrics moves off the
// data plane; /healthz and /readyz answer on both; pprof is only there
// when asked for.
func TestManagementListener(t *testing.T) {
	for _, pprofOn := range []bool{false, true} {
		h := start(t, func(c *config.Config) {
			c.Management.Listen = "127.0.0.1:0"
			c.Management.Pprof = pprofOn
		})
		mgmt := "http://" + h.app.ManagementAddr()
		require.NotEqual(t, "http://", mgmt)
		c := &http.Client{Timeout: 10 * time.Second}

		code, body := get(t, c, mgmt+"/metrics")
		assert.Equal(t, http.StatusOK, code)
		assert.Contains(t, body, "psc_", "the sidecar's metrics")
		code, body = get(t, c, h.base+"/metrics")
		assert.Equal(t, http.StatusNotFound, code, "the data plane no longer serves /metrics: %s", body)

		for _, path := range []string{"/healthz", "/readyz"} {
			code, _ = get(t, c, mgmt+path)
			assert.Equal(t, http.StatusOK, code, path)
			code, _ = get(t, c, h.base+path)
			assert.Equal(t, http.StatusOK, code, "the data plane still answers %s", path)
		}
		code, _ = get(t, c, mgmt+"/v1/topics/a/b/c/messages")
		assert.Equal(t, http.StatusNotFound, code, "no data plane on the management port")

		code, body = get(t, c, mgmt+"/debug/pprof/")
		if pprofOn {
			assert.Equal(t, http.StatusOK, code)
			assert.Contains(t, body, "goroutine")
		} else {
			assert.Equal(t, http.StatusNotFound, code, "pprof is off by default")
		}
		code, _ = get(t, c, h.base+"/debug/pprof/")
		assert.Equal(t, http.StatusNotFound, code, "never on the data plane")
	}

	// Without management.listen, /metrics stays on the data plane.
	h := start(t, nil)
	assert.Empty(t, h.app.ManagementAddr())
	code, body := get(t, &http.Client{Timeout: 10 * time.Second}, h.base+"/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "psc_")
}
