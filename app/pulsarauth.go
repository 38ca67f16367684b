package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarauth "github.com/apache/pulsar-client-go/pulsar/auth"
	adminauth "github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/auth"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// pulsarConn is how the sidecar reaches one Pulsar cluster (issue 16, ADR 095): its
// service URL, TLS, and where its credentials come from. One is built per
// cluster at start and shared by that cluster's clients (producers,
// consumers) and, for the primary, the admin REST clients.
type pulsarConn struct {
	// what names the cluster in logs: "pulsar" or "pulsar (disaster recovery)".
	what string
	// keys name its settings in errors.
	keys pulsarKeys
	url  string
	// tlsFiles are the cluster's TLS settings; tlsConfig is built from
	// them (nil for a pulsar:// URL and an http:// admin URL).
	tlsFiles  config.PulsarTLS
	tlsConfig *tls.Config
	// token is the JWT (inline or from a file, re-read by reloadSecrets),
	// nil without one.
	token *config.Secret
	// oauth2 is pulsar-client-go's OAuth2 client-credentials provider,
	// initialized once: it fetches, caches and refreshes the access token
	// for every client of the cluster. Nil without OAuth2.
	oauth2 pulsarauth.Provider
	// oauth2Cfg is the configuration it was built from (the console's admin
	// client builds its own from it).
	oauth2Cfg    config.OAuth2
	oauth2Secret string
}

// pulsarKeys are the names of one cluster's settings.
type pulsarKeys struct{ tokenFile, oauth2, tls string }

var (
	primaryKeys = pulsarKeys{tokenFile: "pulsar.authTokenFile", oauth2: "pulsar.oauth2", tls: "pulsar.tls"}       //nolint:gosec // setting names, not credentials
	drKeys      = pulsarKeys{tokenFile: "pulsar.drAuthTokenFile", oauth2: "pulsar.drOauth2", tls: "pulsar.drTLS"} //nolint:gosec // setting names, not credentials
)

// newPulsarConn reads the cluster's secrets and TLS files. A missing file
// fails the start with the setting's name.
func newPulsarConn(what string, keys pulsarKeys, url string, tlsFiles config.PulsarTLS, token, tokenFile string, o config.OAuth2) (*pulsarConn, error) {
	c := &pulsarConn{what: what, keys: keys, url: url, tlsFiles: tlsFiles, oauth2Cfg: o}
	var err error
	if token != "" || tokenFile != "" {
		if c.token, err = config.NewSecret(token, tokenFile); err != nil {
			return nil, fmt.Errorf("app: %s: %w", keys.tokenFile, err)
		}
	}
	if o.Enabled() {
		if c.oauth2Secret, err = config.SecretValue(o.ClientSecret, o.ClientSecretFile); err != nil {
			return nil, fmt.Errorf("app: %s.clientSecretFile: %w", keys.oauth2, err)
		}
		p, err := pulsarauth.NewAuthenticationOAuth2WithParams(map[string]string{
			pulsarauth.ConfigParamType:      pulsarauth.ConfigParamTypeClientCredentials,
			pulsarauth.ConfigParamIssuerURL: o.IssuerURL,
			pulsarauth.ConfigParamAudience:  o.Audience,
			pulsarauth.ConfigParamScope:     o.Scope,
			pulsarauth.ConfigParamClientID:  o.ClientID,
			pulsarauth.ConfigParamKeyFile:   c.oauth2KeyFile(),
		})
		if err != nil {
			return nil, fmt.Errorf("app: %s: %w", keys.oauth2, err)
		}
		if err := p.Init(); err != nil {
			return nil, fmt.Errorf("app: %s: %w", keys.oauth2, err)
		}
		c.oauth2 = p
	}
	return c, nil
}

// oauth2KeyFile is the client credentials in the key-file format
// pulsar-client-go reads, as a data:// URL, so the secret never goes
// through a file the sidecar writes.
func (c *pulsarConn) oauth2KeyFile() string {
	kf, _ := json.Marshal(map[string]string{ //nolint:errchkjson // strings only
		"type": "client_credentials", "client_id": c.oauth2Cfg.ClientID,
		"client_secret": c.oauth2Secret, "issuer_url": c.oauth2Cfg.IssuerURL,
	})
	return "data://" + string(kf)
}

// bearer is the current credential for the cluster: the token file's
// latest content, or an OAuth2 access token (fetched again when it
// expires); "" when the cluster needs none.
func (c *pulsarConn) bearer() (string, error) {
	switch {
	case c.oauth2 != nil:
		data, err := c.oauth2.GetData()
		if err != nil {
			return "", fmt.Errorf("%s OAuth2 token: %w", c.what, err)
		}
		return string(data), nil
	case c.token != nil:
		return c.token.Value(), nil
	}
	return "", nil
}

// authentication is what the binary protocol's clients send in CONNECT:
// the token read at each new connection, so a rotated file or a refreshed
// OAuth2 token is used from the next connection on.
func (c *pulsarConn) authentication() pulsar.Authentication {
	if c.token == nil && c.oauth2 == nil {
		return nil
	}
	return pulsar.NewAuthenticationTokenFromSupplier(c.bearer)
}

// clientOptions are the Pulsar client options for the cluster.
func (a *App) pulsarOptions(c *pulsarConn) (pulsar.ClientOptions, error) {
	o := pulsar.ClientOptions{
		URL:               c.url,
		OperationTimeout:  a.cfg.Pulsar.OperationTimeout,
		ConnectionTimeout: a.cfg.Pulsar.ConnectionTimeout,
		Logger:            pulsarLogger(a.log),
		MetricsRegisterer: a.reg,
		Authentication:    c.authentication(),
	}
	if strings.HasPrefix(c.url, "pulsar+ssl://") {
		tc, err := c.clientTLS()
		if err != nil {
			return o, err
		}
		o.TLSConfig = tc
		o.TLSValidateHostname = c.tlsFiles.ValidateHostname // informational: TLSConfig decides
	}
	return o, nil
}

// clientTLS builds (once) the TLS configuration of the cluster's
// connections: the trusted CAs, the host name check unless turned off (the
// chain is verified either way), and the client certificate, read on every
// handshake so a rotated certificate is used by the next connection.
func (c *pulsarConn) clientTLS() (*tls.Config, error) {
	if c.tlsConfig != nil {
		return c.tlsConfig, nil
	}
	t := c.tlsFiles
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.TrustCertsFile != "" {
		pem, err := os.ReadFile(t.TrustCertsFile)
		if err != nil {
			return nil, fmt.Errorf("app: %s.trustCertsFile: %w", c.keys.tls, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("app: %s.trustCertsFile %s holds no PEM certificate", c.keys.tls, t.TrustCertsFile)
		}
	}
	if t.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			return nil, fmt.Errorf("app: %s.certFile/keyFile: %w", c.keys.tls, err)
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("%s client certificate: %w", c.what, err)
			}
			return &pair, nil
		}
	}
	if !t.ValidateHostname {
		// Go checks the host name with the chain; to keep the chain check
		// alone, skip the built-in one and verify the chain here.
		roots := tc.RootCAs
		tc.InsecureSkipVerify = true //nolint:gosec // the chain is verified in VerifyConnection
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the broker sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	c.tlsConfig = tc
	return tc, nil
}

// adminHTTPClient is the HTTP client of the primary's admin REST: its TLS
// (for https://) and the cluster's current credential on every request.
func (c *pulsarConn) adminHTTPClient(adminURL string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if strings.HasPrefix(adminURL, "https://") {
		tc, err := c.clientTLS()
		if err != nil {
			return nil, err
		}
		// A copy: net/http writes its protocols into the transport's
		// config (NextProtos) while the Pulsar client dials with the same
		// one.
		tr.TLSClientConfig = tc.Clone()
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &bearerTransport{base: tr, bearer: c.bearer}}, nil
}

// bearerTransport adds "Authorization: Bearer <token>" with the cluster's
// current credential. It is also pulsaradmin's auth.Provider, so the admin
// client sees a rotated token file at once.
type bearerTransport struct {
	base   http.RoundTripper
	bearer func() (string, error)
}

var _ adminauth.Provider = (*bearerTransport)(nil)

func (b *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := b.bearer()
	if err != nil {
		return nil, err
	}
	if tok != "" && req.Header.Get("Authorization") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return b.base.RoundTrip(req)
}

func (b *bearerTransport) Transport() http.RoundTripper            { return b.base }
func (b *bearerTransport) WithTransport(tripper http.RoundTripper) { b.base = tripper }

// tlsCheck is the /readyz check of a pulsar+ssl:// cluster: a TLS
// handshake with the first service host, at most every tlsCheckEvery, so
// that a broker certificate the sidecar does not trust shows as such
// instead of as a broker that does not answer.
func (c *pulsarConn) tlsCheck() func(ctx context.Context) error {
	var (
		mu      sync.Mutex
		last    time.Time
		lastErr error
	)
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < tlsCheckEvery {
			return lastErr
		}
		last, lastErr = time.Now(), c.handshake(ctx)
		return lastErr
	}
}

const tlsCheckEvery = 10 * time.Second

// handshake dials the first host of the service URL and completes a TLS
// handshake with the cluster's configuration. Only TLS failures count: a
// broker that is down is the durability checks' business.
func (c *pulsarConn) handshake(ctx context.Context) error {
	u, err := url.Parse(c.url)
	if err != nil {
		return err
	}
	host := strings.Split(u.Host, ",")[0]
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "6651")
	}
	tc, err := c.clientTLS()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := tls.Dialer{Config: tc}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		var (
			unknown  x509.UnknownAuthorityError
			hostname x509.HostnameError
			invalid  x509.CertificateInvalidError
			verify   *tls.CertificateVerificationError
		)
		if errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
			return fmt.Errorf("TLS to %s refused: %w (check %s.trustCertsFile and %s.validateHostname)", host, err, c.keys.tls, c.keys.tls)
		}
		return nil // not a TLS problem
	}
	return conn.Close()
}

// reloadSecrets re-reads the cluster's token file.
func (c *pulsarConn) reloadSecrets() (string, bool, error) {
	if c.token == nil {
		return "", false, nil
	}
	changed, err := c.token.Reload()
	return c.token.File(), changed, err
}

// close ends the OAuth2 provider.
func (c *pulsarConn) close() {
	if c.oauth2 != nil {
		_ = c.oauth2.Close()
	}
}

// addTLSChecks adds a /readyz check per pulsar+ssl:// cluster. They are
// degraded checks, as a dead primary is: produce still fails over or
// spools, and the answer says why the cluster is not used.
func (a *App) addTLSChecks(checks map[string]proxy.Check) {
	if c := a.primaryConn; c != nil && c.tlsConfig != nil {
		checks["pulsarTLS"] = c.tlsCheck()
	}
	if c := a.drConn; c != nil && c.tlsConfig != nil {
		checks["drPulsarTLS"] = c.tlsCheck()
	}
}

// elasticConnection reads the Elasticsearch trace store's credentials and
// CA from their settings or mounted files (at start).
func elasticConnection(c *config.TraceElasticsearch) (tracer.ElasticOptions, error) {
	var o tracer.ElasticOptions
	var err error
	o.Username = c.Username
	if o.Password, err = config.SecretValue(c.Password, c.PasswordFile); err != nil {
		return o, fmt.Errorf("app: trace.elasticsearch.passwordFile: %w", err)
	}
	if o.APIKey, err = config.SecretValue(c.APIKey, c.APIKeyFile); err != nil {
		return o, fmt.Errorf("app: trace.elasticsearch.apiKeyFile: %w", err)
	}
	if c.CAFile != "" {
		if o.CACert, err = os.ReadFile(c.CAFile); err != nil {
			return o, fmt.Errorf("app: trace.elasticsearch.caFile: %w", err)
		}
	}
	o.CertificateFingerprint = c.CertificateFingerprint
	return o, nil
}
