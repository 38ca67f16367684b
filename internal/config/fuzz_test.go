package config

import (
	"testing"
)

// FuzzParse: any YAML document either fails to decode, fails validation
// with ErrInvalid, or gives a configuration that validates again to the
// same answer (validation has no side effect that changes its verdict).
// Seeded with the connection settings of issue 16.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"pulsar: {url: 'pulsar+ssl://b:6651', tls: {trustCertsFile: /ca.pem, validateHostname: false}}",
		"pulsar: {authToken: a, authTokenFile: /f}",
		"pulsar: {oauth2: {issuerURL: 'https://a', clientID: x, clientSecretFile: /s}}",
		"management: {listen: '127.0.0.1:9090', pprof: true}",
		"http: {tlsCertFile: /c, tlsKeyFile: /k}",
		"trace: {elasticsearch: {certificateFingerprint: 'AB:CD'}}",
		"secrets: {reloadInterval: -1s}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := Parse([]byte(doc))
		if err != nil {
			return // a decode error or ErrInvalid; either way nothing is used
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("valid once, invalid on a second look: %v", err)
		}
		if c.Management.Pprof && c.Management.Listen == "" {
			t.Fatal("pprof accepted without a management listener")
		}
		if c.Pulsar.AuthToken != "" && c.Pulsar.AuthTokenFile != "" {
			t.Fatal("a token given twice was accepted")
		}
	})
}
