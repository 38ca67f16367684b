package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// PulsarTLS configures TLS to one Pulsar cluster: its pulsar+ssl://
// service URL and, for the primary, an https:// admin URL.
type PulsarTLS struct {
	// TrustCertsFile is a PEM file of the CAs that sign the brokers'
	// certificates; empty: the system's roots.
	TrustCertsFile string `yaml:"trustCertsFile"`
	// ValidateHostname checks that the broker's certificate names the host
	// connected to (on by default). Off, the chain is still verified.
	ValidateHostname bool `yaml:"validateHostname"`
	// CertFile and KeyFile are the client certificate for mutual TLS
	// (re-read on every new connection).
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// OAuth2 configures OAuth2 client credentials (pulsar-client-go's own
// provider): the token endpoint comes from IssuerURL's
// .well-known/openid-configuration.
type OAuth2 struct {
	IssuerURL        string `yaml:"issuerURL"`
	Audience         string `yaml:"audience"`
	Scope            string `yaml:"scope"`
	ClientID         string `yaml:"clientID"`
	ClientSecret     string `yaml:"clientSecret"`
	ClientSecretFile string `yaml:"clientSecretFile"`
}

// Enabled reports whether OAuth2 is configured.
func (o OAuth2) Enabled() bool { return o.IssuerURL != "" }

// Management configures the listener for /metrics, /healthz, /readyz and
// pprof apart from the data plane. Empty Listen: off, and the data plane
// serves /metrics as before.
type Management struct {
	Listen string `yaml:"listen"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the management
	// listener (never on the data plane).
	Pprof bool `yaml:"pprof"`
}

// Secrets configures how secrets read from files are kept fresh.
type Secrets struct {
	// ReloadInterval is how often token files and the HTTP certificate are
	// checked for a new content; SIGHUP checks at once. 0: on SIGHUP only.
	ReloadInterval time.Duration `yaml:"reloadInterval"`
}

// validateConnections checks the TLS, OAuth2, secret-file and listener
// settings (issue 16).
func (c *Config) validateConnections() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	oneOf := func(key, value, file string) {
		if value != "" && file != "" {
			bad("%s and %sFile are both set: give the secret one way", key, key)
		}
	}
	p := &c.Pulsar
	oneOf("pulsar.authToken", p.AuthToken, p.AuthTokenFile)
	oneOf("pulsar.drAuthToken", p.DRAuthToken, p.DRAuthTokenFile)
	oneOf("trace.elasticsearch.password", c.Trace.Elasticsearch.Password, c.Trace.Elasticsearch.PasswordFile)
	oneOf("trace.elasticsearch.apiKey", c.Trace.Elasticsearch.APIKey, c.Trace.Elasticsearch.APIKeyFile)
	oneOf("consume.secret", c.Consume.Secret, c.Consume.SecretFile)
	pair := func(what, cert, key string) {
		if (cert == "") != (key == "") {
			bad("%s: give both the certificate and the key file, or neither", what)
		}
	}
	pair("pulsar.tls.certFile/keyFile", p.TLS.CertFile, p.TLS.KeyFile)
	pair("pulsar.drTLS.certFile/keyFile", p.DRTLS.CertFile, p.DRTLS.KeyFile)
	pair("http.tlsCertFile/tlsKeyFile", c.HTTP.TLSCertFile, c.HTTP.TLSKeyFile)
	oauth := func(key string, o OAuth2, token, tokenFile string) {
		if !o.Enabled() {
			if o != (OAuth2{}) {
				bad("%s: issuerURL is empty but other OAuth2 settings are set", key)
			}
			return
		}
		if u, err := url.Parse(o.IssuerURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("%s.issuerURL %q: want an https:// URL", key, o.IssuerURL)
		}
		if o.ClientID == "" {
			bad("%s.clientID is empty", key)
		}
		if o.ClientSecret == "" && o.ClientSecretFile == "" {
			bad("%s: set clientSecret or clientSecretFile", key)
		}
		oneOf(key+".clientSecret", o.ClientSecret, o.ClientSecretFile)
		if token != "" || tokenFile != "" {
			bad("%s and a token are both set: choose one authentication", key)
		}
	}
	oauth("pulsar.oauth2", p.OAuth2, p.AuthToken, p.AuthTokenFile)
	oauth("pulsar.drOauth2", p.DROauth2, p.DRAuthToken, p.DRAuthTokenFile)
	if u := p.AdminURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		bad("pulsar.adminURL %q: want http://host:port or https://host:port", u)
	}
	if l := c.Management.Listen; l != "" {
		if _, port, err := net.SplitHostPort(l); err != nil {
			bad("management.listen %q: %v", l, err)
		} else if l == c.Listen && port != "0" {
			bad("management.listen %q is the data plane's listen address: give it its own port", l)
		}
	} else if c.Management.Pprof {
		bad("management.pprof needs management.listen: pprof is never served on the data plane")
	}
	if c.Secrets.ReloadInterval < 0 {
		bad("secrets.reloadInterval must be 0 (SIGHUP only) or positive, got %s", c.Secrets.ReloadInterval)
	}
	if fp := c.Trace.Elasticsearch.CertificateFingerprint; fp != "" {
		if b, err := hex.DecodeString(strings.ReplaceAll(fp, ":", "")); err != nil || len(b) != 32 {
			bad("trace.elasticsearch.certificateFingerprint: want the 64 hex digits of a SHA-256 (colons allowed)")
		}
	}
	return errs
}
