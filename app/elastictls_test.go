package app

import (
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
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer/esfake"
)

// TestElasticsearchOverTLSFromFiles: the trace store reaches an HTTPS
// Elasticsearch trusted through trace.elasticsearch.caFile, with the API
// key read from trace.elasticsearch.apiKeyFile, and the produce events land
// there.
func TestElasticsearchOverTLSFromFiles(t *testing.T) {
	ca := testcert.NewCA(t, "es-ca")
	fake := esfake.New()
	var mu sync.Mutex
	auth := map[string]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth[r.Header.Get("Authorization")]++
		mu.Unlock()
		fake.ServeHTTP(w, r)
	}))
	srv.TLS = testcert.ServerTLS(ca.Server(t, "es", "127.0.0.1"), nil)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	keyFile := filepath.Join(t.TempDir(), "es-api-key")
	require.NoError(t, os.WriteFile(keyFile, []byte("c2lkZWNhcjpzZWNyZXQ=\n"), 0o600))

	h := startApp(t, func(c *config.Config) {
		c.Trace.Store = "elasticsearch"
		c.Trace.Elasticsearch.Addresses = srv.URL
		c.Trace.Elasticsearch.CAFile = ca.CertFile
		c.Trace.Elasticsearch.APIKeyFile = keyFile
		c.Trace.IngestBudget = 0 // write at once
	})
	p, _ := newTopic(t)
	r := h.produceJSON(p, `{"messages":[{"payload":"traced"}]}`)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Eventually(t, func() bool { return fake.Count() >= 2 }, 10*time.Second, 20*time.Millisecond,
		"accepted and persisted reach Elasticsearch over TLS")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, map[string]int{"APIKey c2lkZWNhcjpzZWNyZXQ=": auth["APIKey c2lkZWNhcjpzZWNyZXQ="]}, auth,
		"every request carries the key from the file")
}

// TestSecretFilesMissing: a secret file that is missing fails the start
// and names the setting.
func TestSecretFilesMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	for name, edit := range map[string]func(*config.Config){
		"pulsar.authTokenFile": func(c *config.Config) { c.Pulsar.AuthTokenFile = missing },
		"trace.elasticsearch.apiKeyFile": func(c *config.Config) {
			c.Trace.Store = "elasticsearch"
			c.Trace.Elasticsearch.Addresses = "https://127.0.0.1:1"
			c.Trace.Elasticsearch.APIKeyFile = missing
		},
		"consume.secretFile": func(c *config.Config) { c.Consume.SecretFile = missing },
		"pulsar.oauth2.clientSecretFile": func(c *config.Config) {
			c.Pulsar.OAuth2 = config.OAuth2{IssuerURL: "https://127.0.0.1:1", ClientID: "x", ClientSecretFile: missing}
		},
		"http.tlsCertFile/tlsKeyFile": func(c *config.Config) { c.HTTP.TLSCertFile, c.HTTP.TLSKeyFile = missing, missing },
		"pulsar.tls.trustCertsFile": func(c *config.Config) {
			c.Pulsar.URL = "pulsar+ssl://127.0.0.1:1"
			c.Pulsar.TLS.TrustCertsFile = missing
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, nil, nil)
			edit(&cfg)
			a, err := New(cfg, WithLogger(testLogger(t)), WithRecorder(&recorder{}))
			require.NoError(t, err)
			err = a.Start(t.Context())
			require.Error(t, err)
			assert.Contains(t, err.Error(), missing)
			assert.Contains(t, err.Error(), name, "the error names the setting")
		})
	}
}
