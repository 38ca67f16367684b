package tracer_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testcert"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer/esfake"
)

// tlsES is the Elasticsearch fake behind HTTPS with a test certificate,
// remembering the Authorization header of every request.
type tlsES struct {
	fake *esfake.Server
	srv  *httptest.Server
	ca   *testcert.CA
	leaf *testcert.Leaf

	mu   sync.Mutex
	auth []string
}

func runTLSES(t *testing.T) *tlsES { return runTLSESChain(t, false) }

// runTLSESChain: with withCA the server sends its CA after its leaf, as
// Elasticsearch's generated HTTP certificate does.
func runTLSESChain(t *testing.T, withCA bool) *tlsES {
	t.Helper()
	es := &tlsES{fake: esfake.New(), ca: testcert.NewCA(t, "es-ca")}
	es.leaf = es.ca.Server(t, "es-1", "127.0.0.1")
	es.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		es.mu.Lock()
		es.auth = append(es.auth, r.Header.Get("Authorization"))
		es.mu.Unlock()
		es.fake.ServeHTTP(w, r)
	}))
	es.srv.TLS = testcert.ServerTLS(es.leaf, nil)
	if withCA {
		pair := es.leaf.TLS
		pair.Certificate = append(slices.Clone(pair.Certificate), es.ca.Cert.Raw)
		es.srv.TLS.Certificates = []tls.Certificate{pair}
	}
	es.srv.StartTLS()
	t.Cleanup(es.srv.Close)
	return es
}

func (es *tlsES) authHeaders() []string {
	es.mu.Lock()
	defer es.mu.Unlock()
	return slices.Clone(es.auth)
}

// TestElasticTLS: the store reaches an HTTPS Elasticsearch with a private
// CA or a pinned certificate fingerprint, sends the API key or basic
// credentials, and refuses a server it cannot trust.
func TestElasticTLS(t *testing.T) {
	t.Run("CA file and API key", func(t *testing.T) {
		es := runTLSES(t)
		e := newElastic(t, tracer.ElasticOptions{Addresses: []string{es.srv.URL}, CACert: es.ca.CertPEM, APIKey: "a2V5OnNlY3JldA=="})
		require.NoError(t, e.Start(t.Context()))
		require.NoError(t, e.Write(t.Context(), goldenEvents()))
		assert.NotEmpty(t, es.fake.Indices(), "the events reached the index")
		for _, h := range es.authHeaders() {
			assert.Equal(t, "APIKey a2V5OnNlY3JldA==", h) // the client's spelling; Elasticsearch takes the scheme in any case
		}
	})
	t.Run("fingerprint and basic auth", func(t *testing.T) {
		es := runTLSES(t)
		fp := testcert.Fingerprint(es.leaf.Cert)
		// As Elasticsearch prints it: upper case with colons.
		var pairs []string
		for i := 0; i < len(fp); i += 2 {
			pairs = append(pairs, strings.ToUpper(fp[i:i+2]))
		}
		e := newElastic(t, tracer.ElasticOptions{Addresses: []string{es.srv.URL}, CertificateFingerprint: strings.Join(pairs, ":"),
			Username: "psc", Password: "pw"})
		require.NoError(t, e.Start(t.Context()))
		require.NoError(t, e.Write(t.Context(), goldenEvents()))
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte("psc:pw"))
		hs := es.authHeaders()
		require.NotEmpty(t, hs)
		for _, h := range hs {
			assert.Equal(t, want, h)
		}
	})
	t.Run("CA's fingerprint", func(t *testing.T) {
		// Elasticsearch prints its HTTP CA's fingerprint; the server sends
		// that CA after its leaf.
		es := runTLSESChain(t, true)
		e := newElastic(t, tracer.ElasticOptions{Addresses: []string{es.srv.URL}, CertificateFingerprint: testcert.Fingerprint(es.ca.Cert)})
		require.NoError(t, e.Start(t.Context()))
		// A server that sends its leaf only cannot be matched by the CA's.
		leafOnly := runTLSES(t)
		e = newElastic(t, tracer.ElasticOptions{Addresses: []string{leafOnly.srv.URL}, CertificateFingerprint: testcert.Fingerprint(leafOnly.ca.Cert)})
		require.ErrorIs(t, e.Start(t.Context()), tracer.ErrFingerprint)
	})
	t.Run("untrusted", func(t *testing.T) {
		es := runTLSES(t)
		other := testcert.NewCA(t, "other")
		for name, opts := range map[string]tracer.ElasticOptions{
			"system roots":      {},
			"another CA":        {CACert: other.CertPEM},
			"wrong fingerprint": {CertificateFingerprint: testcert.Fingerprint(other.Cert)},
		} {
			opts.Addresses = []string{es.srv.URL}
			e := newElastic(t, opts)
			err := e.Start(t.Context())
			require.Error(t, err, name)
			if name == "wrong fingerprint" {
				assert.ErrorIs(t, err, tracer.ErrFingerprint)
			} else {
				var ua x509.UnknownAuthorityError
				assert.ErrorAs(t, err, &ua, name)
			}
		}
		assert.Empty(t, es.fake.Indices(), "nothing was written")
	})
	t.Run("bad options", func(t *testing.T) {
		_, err := tracer.NewElastic(tracer.ElasticOptions{Addresses: []string{"https://x"}, CACert: []byte("not pem")})
		require.Error(t, err)
		_, err = tracer.NewElastic(tracer.ElasticOptions{Addresses: []string{"https://x"}, CertificateFingerprint: "abc"})
		require.Error(t, err)
		_, err = tracer.NewElastic(tracer.ElasticOptions{Addresses: []string{"https://x"}, CertificateFingerprint: strings.Repeat("a", 64),
			Transport: http.DefaultTransport})
		require.Error(t, err, "pinning needs the store's own transport")
	})
}
