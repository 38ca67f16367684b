package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(path, []byte("eyJ.a.b\n\n"), 0o600))
	v, err := ReadSecretFile(path)
	require.NoError(t, err)
	assert.Equal(t, "eyJ.a.b", v, "line ends at the end are trimmed")
	// Spaces are the secret's: this test once asserted that they were
	// trimmed, while redis.passwordFile kept them. One rule now reads every
	// secret file (docs/configuration.md): a password may begin or end with
	// a space, and what echo or a Kubernetes Secret adds is a line end.
	require.NoError(t, os.WriteFile(path, []byte("  pass word \r\n"), 0o600))
	v, err = ReadSecretFile(path)
	require.NoError(t, err)
	assert.Equal(t, "  pass word ", v, "spaces are kept, the CRLF goes")

	require.NoError(t, os.WriteFile(path, []byte(" \n"), 0o600))
	_, err = ReadSecretFile(path)
	assert.ErrorIs(t, err, ErrSecretFile, "an empty file is an error")
	_, err = ReadSecretFile(filepath.Join(dir, "missing"))
	assert.ErrorIs(t, err, ErrSecretFile)
	assert.True(t, errors.Is(err, os.ErrNotExist), "the cause stays visible: %v", err)

	v, err = SecretValue("inline", "")
	require.NoError(t, err)
	assert.Equal(t, "inline", v)
}

// TestSecretReload: a rotated file is seen by Reload; a file caught empty
// or removed mid-rotation keeps the last good value.
func TestSecretReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte("one\n"), 0o600))
	s, err := NewSecret("", path)
	require.NoError(t, err)
	assert.Equal(t, "one", s.Value())
	assert.Equal(t, path, s.File())

	changed, err := s.Reload()
	require.NoError(t, err)
	assert.False(t, changed)

	require.NoError(t, os.WriteFile(path, []byte("two"), 0o600))
	changed, err = s.Reload()
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, "two", s.Value())

	require.NoError(t, os.WriteFile(path, nil, 0o600))
	_, err = s.Reload()
	require.ErrorIs(t, err, ErrSecretFile)
	assert.Equal(t, "two", s.Value(), "a failed reload keeps the last good value")
	require.NoError(t, os.Remove(path))
	_, err = s.Reload()
	require.Error(t, err)
	assert.Equal(t, "two", s.Value())

	inline, err := NewSecret("fixed", "")
	require.NoError(t, err)
	changed, err = inline.Reload()
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, "fixed", inline.Value())

	_, err = NewSecret("", path)
	assert.ErrorIs(t, err, ErrSecretFile, "a missing file fails at start")
}

func TestConnectionSettings(t *testing.T) {
	c, err := Parse([]byte(`
pulsar:
  url: pulsar+ssl://broker.pulsar.svc:6651
  adminURL: https://broker.pulsar.svc:8443
  tls: {trustCertsFile: /etc/pulsar/ca.pem, certFile: /etc/pulsar/tls.crt, keyFile: /etc/pulsar/tls.key}
  oauth2: {issuerURL: https://auth.example.com/, audience: urn:sn:pulsar:o:i, clientID: sidecar, clientSecretFile: /var/run/secrets/oauth2}
  drURL: pulsar+ssl://dr.pulsar.svc:6651
  drAuthTokenFile: /var/run/secrets/dr-token
  drTLS: {validateHostname: false}
http: {tlsCertFile: /tls/tls.crt, tlsKeyFile: /tls/tls.key}
management: {listen: 127.0.0.1:9090, pprof: true}
secrets: {reloadInterval: 30s}
trace:
  elasticsearch: {caFile: /es/ca.pem, apiKeyFile: /es/key, certificateFingerprint: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"}
consume: {secretFile: /var/run/secrets/consume}
`))
	require.NoError(t, err)
	assert.True(t, c.Pulsar.TLS.ValidateHostname, "hostname verification is on unless turned off")
	assert.False(t, c.Pulsar.DRTLS.ValidateHostname)
	assert.True(t, c.Pulsar.OAuth2.Enabled())
	assert.False(t, c.Pulsar.DROauth2.Enabled())

	d := Default()
	assert.True(t, d.Pulsar.TLS.ValidateHostname)
	assert.True(t, d.Pulsar.DRTLS.ValidateHostname)
	assert.Empty(t, d.Management.Listen, "no management listener unless asked")

	loaded, err := Load([]string{"--pulsar-tls-validate-hostname=false", "--management-listen", "127.0.0.1:9091"},
		env(map[string]string{"PSC_PULSAR_AUTH_TOKEN_FILE": "/run/token", "PSC_SECRETS_RELOAD_INTERVAL": "0s"}), os.Stderr)
	require.NoError(t, err)
	assert.False(t, loaded.Pulsar.TLS.ValidateHostname)
	assert.Equal(t, "/run/token", loaded.Pulsar.AuthTokenFile)
	assert.Equal(t, "127.0.0.1:9091", loaded.Management.Listen)
	assert.Zero(t, loaded.Secrets.ReloadInterval)
}

func TestConnectionSettingsInvalid(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"token twice":        {"pulsar: {authToken: a, authTokenFile: /f}", "pulsar.authToken and pulsar.authTokenFile are both set"},
		"dr token twice":     {"pulsar: {drAuthToken: a, drAuthTokenFile: /f}", "pulsar.drAuthToken and"},
		"es password twice":  {"trace: {elasticsearch: {password: a, passwordFile: /f}}", "trace.elasticsearch.password and"},
		"es api key twice":   {"trace: {elasticsearch: {apiKey: a, apiKeyFile: /f}}", "trace.elasticsearch.apiKey and"},
		"consume twice":      {"consume: {secret: 0123456789abcdef, secretFile: /f}", "consume.secret and"},
		"cert without key":   {"pulsar: {tls: {certFile: /c}}", "pulsar.tls.certFile/keyFile"},
		"dr key without":     {"pulsar: {drTLS: {keyFile: /k}}", "pulsar.drTLS.certFile/keyFile"},
		"http cert only":     {"http: {tlsCertFile: /c}", "http.tlsCertFile/tlsKeyFile"},
		"oauth2 no issuer":   {"pulsar: {oauth2: {clientID: x}}", "issuerURL is empty"},
		"oauth2 bad issuer":  {"pulsar: {oauth2: {issuerURL: 'auth.example.com', clientID: x, clientSecret: y}}", "pulsar.oauth2.issuerURL"},
		"oauth2 no client":   {"pulsar: {oauth2: {issuerURL: 'https://a', clientSecret: y}}", "pulsar.oauth2.clientID is empty"},
		"oauth2 no secret":   {"pulsar: {oauth2: {issuerURL: 'https://a', clientID: x}}", "set clientSecret or clientSecretFile"},
		"oauth2 and token":   {"pulsar: {authToken: t, oauth2: {issuerURL: 'https://a', clientID: x, clientSecret: y}}", "choose one authentication"},
		"dr oauth2 secret":   {"pulsar: {drOauth2: {issuerURL: 'https://a', clientID: x, clientSecret: y, clientSecretFile: /f}}", "pulsar.drOauth2.clientSecret and"},
		"admin url":          {"pulsar: {adminURL: 'broker:8080'}", "pulsar.adminURL"},
		"management listen":  {"management: {listen: nope}", "management.listen \"nope\""},
		"management same":    {"listen: 127.0.0.1:8088\nmanagement: {listen: 127.0.0.1:8088}", "its own port"},
		"pprof no listener":  {"management: {pprof: true}", "management.pprof needs management.listen"},
		"reload negative":    {"secrets: {reloadInterval: -1s}", "secrets.reloadInterval"},
		"fingerprint length": {"trace: {elasticsearch: {certificateFingerprint: abcd}}", "certificateFingerprint"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalid)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// FuzzSecretFromFile: whatever a secret file holds, the secret is the
// content without its trailing line ends, nothing else removed, and a
// content of only white space is refused.
func FuzzSecretFromFile(f *testing.F) {
	for _, s := range []string{"", "\n", " \r\n", "s3cret\n", "  a b \r\n\n", "x\r", "\t\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := secretFromFile(data)
		rest := strings.TrimPrefix(string(data), v)
		require.True(t, strings.HasPrefix(string(data), v), "the secret is the file's beginning")
		require.Empty(t, strings.Trim(rest, "\r\n"), "only line ends are cut")
		require.False(t, strings.HasSuffix(v, "\n") || strings.HasSuffix(v, "\r"))
		require.Equal(t, strings.TrimSpace(string(data)) != "", ok)
	})
}
