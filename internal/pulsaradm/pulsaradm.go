// Package pulsaradm is the sidecar's one client of a Pulsar cluster's
// admin REST API (the broker's web service URL): pulsaradmin's typed calls
// (stats, internal stats, partition metadata) and, with the same
// authentication and connections, the raw GETs that pulsaradmin answers
// wrongly for the sidecar (an entry by ledger and entry id, a
// subscription's peek: v0.19.0 shares one properties map across a batch;
// the sidecar decodes those answers itself with wire.DecodeEntry).
package pulsaradm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/auth"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

// Client is an admin REST client of one cluster. It is safe for
// concurrent use.
type Client struct {
	admin     pulsaradmin.Client
	http      *http.Client
	base      string
	transport *http.Transport // closed idle connections by Close
}

// New builds the client for the cluster whose admin URL (and
// authentication, TLS) cfg names, e.g. &config.Config{WebServiceURL:
// "http://127.0.0.1:8080", Token: token}. It sends nothing until asked.
func New(cfg *config.Config) (*Client, error) {
	if cfg == nil || cfg.WebServiceURL == "" {
		return nil, errors.New("pulsaradm: a WebServiceURL is required")
	}
	if _, err := url.Parse(cfg.WebServiceURL); err != nil {
		return nil, fmt.Errorf("pulsaradm: admin URL: %w", err)
	}
	provider, err := auth.GetAuthProvider(cfg)
	if err != nil {
		return nil, fmt.Errorf("pulsaradm: auth: %w", err)
	}
	return NewWithProvider(cfg, provider)
}

// NewWithProvider is New with the caller's authentication and transport:
// provider authenticates every request (typed and raw) and its Transport
// carries the TLS settings. The sidecar passes one that reads the
// cluster's current token (a rotated file is used at once) over its own
// TLS configuration.
func NewWithProvider(cfg *config.Config, provider auth.Provider) (*Client, error) {
	if cfg == nil || cfg.WebServiceURL == "" {
		return nil, errors.New("pulsaradm: a WebServiceURL is required")
	}
	if _, err := url.Parse(cfg.WebServiceURL); err != nil {
		return nil, fmt.Errorf("pulsaradm: admin URL: %w", err)
	}
	client, err := admin.NewPulsarClientWithAuthProvider(cfg, provider)
	if err != nil {
		return nil, fmt.Errorf("pulsaradm: client: %w", err)
	}
	c := &Client{admin: client, http: &http.Client{Transport: provider}, base: strings.TrimSuffix(cfg.WebServiceURL, "/")}
	if tr, ok := provider.Transport().(*http.Transport); ok {
		c.transport = tr
	}
	return c, nil
}

// Admin is pulsaradmin's typed client over the same connections.
func (c *Client) Admin() pulsaradmin.Client { return c.admin }

// Get sends GET /admin/v2/<topic's REST path>/<path> (path's segments as
// given: the caller escapes what it puts in them), authenticated. The
// caller reads and closes the body.
func (c *Client) Get(ctx context.Context, topic utils.TopicName, path string) (*http.Response, error) {
	segs := strings.Split(topic.GetRestPath(), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/admin/v2/"+strings.Join(segs, "/")+"/"+path, nil)
	if err != nil {
		return nil, err
	}
	return c.http.Do(req)
}

// Close releases idle connections. It is idempotent.
func (c *Client) Close() error {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	return nil
}
