package minipulsar_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testcert"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// TestTLSRoundTrip: with Options.TLS the broker speaks pulsar+ssl:// and
// https://, the unmodified client verifies the chain and the host name,
// and a client that does not trust the CA cannot connect.
func TestTLSRoundTrip(t *testing.T) {
	ca := testcert.NewCA(t, "broker-ca")
	leaf := ca.Server(t, "broker", "127.0.0.1", "localhost")
	s := minipulsar.RunOptionsT(t, minipulsar.Options{TLS: testcert.ServerTLS(leaf, nil)})
	require.Regexp(t, `^pulsar\+ssl://127\.0\.0\.1:\d+$`, s.ServiceURL())
	require.Regexp(t, `^https://127\.0\.0\.1:\d+$`, s.AdminURL())

	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.ServiceURL(), TLSTrustCertsFilePath: ca.CertFile,
		TLSValidateHostname: true, OperationTimeout: 5 * time.Second, ConnectionTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prod, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "tls"})
	require.NoError(t, err)
	defer prod.Close()
	_, err = prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("over tls")})
	require.NoError(t, err)
	msgs, err := s.Messages("persistent://public/default/tls")
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, "over tls", string(msgs[0].Payload))
	conns := s.Connects()
	require.NotEmpty(t, conns)
	assert.True(t, conns[0].TLS)
	assert.Nil(t, conns[0].ClientCertificate)

	// The admin REST over https with the same CA.
	adm, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: s.AdminURL(), TLSTrustCertsFilePath: ca.CertFile})
	require.NoError(t, err)
	topics, err := adm.Namespaces().GetTopics("public/default")
	require.NoError(t, err)
	assert.Contains(t, topics, "persistent://public/default/tls")

	// Another CA: the handshake fails and so does the producer.
	other := testcert.NewCA(t, "other-ca")
	bad, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.ServiceURL(), TLSTrustCertsFilePath: other.CertFile,
		OperationTimeout: 2 * time.Second, ConnectionTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(bad.Close)
	_, err = bad.CreateProducer(pulsar.ProducerOptions{Topic: "tls"})
	require.Error(t, err, "a broker certificate from an untrusted CA is refused")
	_, err = http.Get(s.AdminURL() + "/admin/v2/tenants") //nolint:noctx // a refused handshake
	require.Error(t, err)
}

// TestMutualTLSAndToken: a broker that requires client certificates and a
// token sees both; a wrong token is refused with AuthenticationError.
func TestMutualTLSAndToken(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	leaf := ca.Server(t, "broker", "127.0.0.1")
	client := ca.Client(t, "sidecar-1")
	s := minipulsar.RunOptionsT(t, minipulsar.Options{
		TLS:          testcert.ServerTLS(leaf, ca),
		Authenticate: minipulsar.RequireToken(func(tok string) bool { return tok == "good" }),
	})
	dial := func(token string) (pulsar.Client, error) {
		return pulsar.NewClient(pulsar.ClientOptions{URL: s.ServiceURL(), TLSTrustCertsFilePath: ca.CertFile,
			TLSValidateHostname: true, TLSCertificateFile: client.CertFile, TLSKeyFilePath: client.KeyFile,
			Authentication:   pulsar.NewAuthenticationToken(token),
			OperationTimeout: 2 * time.Second, ConnectionTimeout: time.Second})
	}
	c, err := dial("good")
	require.NoError(t, err)
	t.Cleanup(c.Close)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "mtls"})
	require.NoError(t, err)
	p.Close()
	conns := s.Connects()
	require.NotEmpty(t, conns)
	assert.Equal(t, "token", conns[0].Method)
	assert.Equal(t, "good", conns[0].Data)
	require.NotNil(t, conns[0].ClientCertificate)
	assert.Equal(t, "sidecar-1", conns[0].ClientCertificate.Subject.CommonName)

	wrong, err := dial("bad")
	require.NoError(t, err)
	t.Cleanup(wrong.Close)
	_, err = wrong.CreateProducer(pulsar.ProducerOptions{Topic: "mtls"})
	require.Error(t, err, "a wrong token is refused")
	last := s.Connects()
	assert.Equal(t, "bad", last[len(last)-1].Data)

	// No client certificate: the handshake itself fails.
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	conn, err := tls.Dial("tcp", s.Addr(), cfg)
	if err == nil {
		_, err = conn.Read(make([]byte, 1)) // TLS 1.3 reports the refusal on the first read
		_ = conn.Close()
	}
	require.Error(t, err)
}
