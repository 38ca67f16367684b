package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testcert"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// startOnBroker runs a sidecar against the given broker (startApp makes its own
// plain one) and a real redis-server.
func startOnBroker(t *testing.T, broker *minipulsar.Server, edit func(*config.Config), opts ...Option) *harness {
	t.Helper()
	rds := testredis.Start(t)
	cfg := testConfig(t, broker, rds)
	if edit != nil {
		edit(&cfg)
	}
	h := &harness{t: t, broker: broker, redis: rds, rec: &recorder{}}
	a, err := New(cfg, append([]Option{WithLogger(testLogger(t)), WithRecorder(h.rec)}, opts...)...)
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err := a.Stop(ctx)
		if !h.stoppedByTest {
			require.NoError(t, err)
		}
	})
	h.app = a
	h.base = "http://" + a.Addr()
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	h.http = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return h
}

// tokensAt are the tokens the broker received in CONNECTs, in order.
func tokensAt(b *minipulsar.Server) []string {
	var out []string
	for _, c := range b.Connects() {
		out = append(out, c.Method+":"+c.Data)
	}
	return out
}

// readyz fetches /readyz.
func readyz(t *testing.T, h *harness) (int, map[string]any) {
	t.Helper()
	res, err := h.http.Get(h.base + "/readyz")
	require.NoError(t, err)
	defer res.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	return res.StatusCode, body
}

// TestPulsarTLSUntrusted: a broker certificate from a CA the sidecar does
// not trust, or for another host name, is refused; /readyz says so in
// words, and the message goes to the spool rather than to that broker.
// With tls.validateHostname off the chain alone is checked.
func TestPulsarTLSUntrusted(t *testing.T) {
	ca := testcert.NewCA(t, "pulsar-ca")
	stranger := testcert.NewCA(t, "stranger-ca")
	broker := minipulsar.RunOptionsT(t, minipulsar.Options{
		TLS: testcert.ServerTLS(ca.Server(t, "broker", "127.0.0.1"), nil)})
	h := startOnBroker(t, broker, func(c *config.Config) {
		c.Pulsar.TLS.TrustCertsFile = stranger.CertFile
		c.HTTP.RequestTimeout = 4 * time.Second
		c.Pulsar.OperationTimeout = 2 * time.Second // its clients never connect: give up sooner
	})
	code, body := readyz(t, h)
	assert.Equal(t, http.StatusOK, code, "a broker it cannot use does not make the pod unready (failover, spool)")
	assert.Equal(t, "degraded", body["status"])
	checks, _ := body["checks"].(map[string]any)
	assert.Contains(t, checks["pulsarTLS"], "certificate signed by unknown authority")
	assert.Contains(t, checks["pulsarTLS"], "tls.trustCertsFile")

	p, full := newTopic(t)
	r := h.produceJSON(p, `{"messages":[{"payload":"x"}]}`)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	assert.Equal(t, "spooled", string(r.Results[0].Status), "never written to a broker it does not trust")
	msgs, _ := broker.Messages(full) // an error: no such topic
	assert.Empty(t, msgs)

	// The right CA, but a certificate for another host name.
	other := minipulsar.RunOptionsT(t, minipulsar.Options{
		TLS: testcert.ServerTLS(ca.Server(t, "elsewhere", "broker.elsewhere.invalid"), nil)})
	h2 := startOnBroker(t, other, func(c *config.Config) {
		c.Pulsar.TLS.TrustCertsFile = ca.CertFile
		c.Pulsar.OperationTimeout = 2 * time.Second
	})
	_, body = readyz(t, h2)
	checks, _ = body["checks"].(map[string]any)
	assert.Contains(t, checks["pulsarTLS"], "cannot validate certificate for 127.0.0.1", "the host name check is on by default")

	h3 := startOnBroker(t, other, func(c *config.Config) {
		c.Pulsar.TLS.TrustCertsFile = ca.CertFile
		c.Pulsar.TLS.ValidateHostname = false
	})
	_, body = readyz(t, h3)
	checks, _ = body["checks"].(map[string]any)
	assert.Equal(t, "ok", checks["pulsarTLS"])
	r = h3.produceJSON(p, `{"messages":[{"payload":"y"}]}`)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	assert.Equal(t, "persisted", string(r.Results[0].Status), "chain verified, host name not checked")
}

// tokenEndpoint is a small OAuth2 server: discovery and the client
// credentials grant, handing out access tokens "access-1", "access-2", ...
type tokenEndpoint struct {
	srv *httptest.Server

	mu       sync.Mutex
	grants   []map[string]string
	issued   int
	clientID string
	secret   string
}

func newTokenEndpoint(t *testing.T, clientID, secret string) *tokenEndpoint {
	te := &tokenEndpoint{clientID: clientID, secret: secret}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": te.srv.URL, "token_endpoint": te.srv.URL + "/oauth/token"})
	})
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g := map[string]string{}
		for k := range r.PostForm {
			g[k] = r.PostForm.Get(k)
		}
		te.mu.Lock()
		defer te.mu.Unlock()
		te.grants = append(te.grants, g)
		if g["grant_type"] != "client_credentials" || g["client_id"] != te.clientID || g["client_secret"] != te.secret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		te.issued++
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "access-" + string(rune('0'+te.issued)),
			"token_type": "Bearer", "expires_in": 3600})
	})
	te.srv = httptest.NewServer(mux)
	t.Cleanup(te.srv.Close)
	return te
}

// TestPulsarOAuth2: client credentials from a secret file are exchanged at
// the token endpoint (found by discovery) with the configured audience, and
// the access token is what the broker receives; a broker that accepts only
// that token takes the sidecar's messages.
func TestPulsarOAuth2(t *testing.T) {
	te := newTokenEndpoint(t, "psc-client", "s3cret")
	ca := testcert.NewCA(t, "pulsar-ca")
	broker := minipulsar.RunOptionsT(t, minipulsar.Options{
		TLS:          testcert.ServerTLS(ca.Server(t, "broker", "127.0.0.1"), nil),
		Authenticate: minipulsar.RequireToken(func(tok string) bool { return tok == "access-1" }),
	})
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	require.NoError(t, os.WriteFile(secretFile, []byte("s3cret\n"), 0o600))
	h := startOnBroker(t, broker, func(c *config.Config) {
		c.Pulsar.TLS.TrustCertsFile = ca.CertFile
		c.Pulsar.OAuth2 = config.OAuth2{IssuerURL: te.srv.URL, Audience: "urn:pulsar:test", ClientID: "psc-client",
			ClientSecretFile: secretFile}
	})
	p, full := newTopic(t)
	r := h.produceJSON(p, `{"messages":[{"payload":"oauth"}]}`)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "persisted", string(r.Results[0].Status))
	msgs, err := broker.Messages(full)
	require.NoError(t, err)
	require.Len(t, msgs, 1)

	conns := broker.Connects()
	require.NotEmpty(t, conns)
	for _, c := range conns {
		assert.Equal(t, "token", c.Method)
		assert.Equal(t, "access-1", c.Data, "the access token reached the broker")
	}
	te.mu.Lock()
	defer te.mu.Unlock()
	require.NotEmpty(t, te.grants)
	assert.Equal(t, "client_credentials", te.grants[0]["grant_type"])
	assert.Equal(t, "urn:pulsar:test", te.grants[0]["audience"])
	assert.Equal(t, 1, te.issued, "one access token, cached for every connection")
}

// TestPulsarOAuth2WrongSecret: a refused client secret fails the start
// with the provider's error, before anything is served.
func TestPulsarOAuth2WrongSecret(t *testing.T) {
	te := newTokenEndpoint(t, "psc-client", "s3cret")
	broker := minipulsar.RunT(t)
	cfg := testConfig(t, broker, testredis.Start(t))
	cfg.Pulsar.OAuth2 = config.OAuth2{IssuerURL: te.srv.URL, ClientID: "psc-client", ClientSecret: "wrong"}
	a, err := New(cfg, WithLogger(testLogger(t)), WithRecorder(&recorder{}))
	require.NoError(t, err)
	err = a.Start(context.Background())
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	require.Error(t, err)
	t.Log(err)
}
