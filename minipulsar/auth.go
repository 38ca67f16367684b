package minipulsar

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// Credentials are what one client sent in its CONNECT, and the certificate
// it presented over TLS.
type Credentials struct {
	// Method is the auth_method_name ("token" for Pulsar tokens and OAuth2
	// access tokens; "" when the client sent none).
	Method string
	// Data is the auth_data: the token itself for "token".
	Data string
	// TLS reports a connection over TLS; ClientCertificate is the leaf the
	// client presented (mutual TLS), nil when none.
	TLS               bool
	ClientCertificate *x509.Certificate
	Remote            string
}

// maxConnects bounds what Connects keeps: the newest half survives when
// it is reached, so a long-running broker does not grow.
const maxConnects = 4096

// errAuthRefused is the message of a refused CONNECT when Authenticate
// returned no message of its own.
const errAuthRefused = "Unable to authenticate"

// authenticate records m's credentials and runs Options.Authenticate. A
// refusal is answered with AuthenticationError, as Pulsar does, and the
// connection stays unconnected.
func (c *conn) authenticate(m *pb.CommandConnect) bool {
	cr := Credentials{Method: m.GetAuthMethodName(), Data: string(m.GetAuthData()), Remote: c.remote}
	if tc, ok := c.nc.(*tls.Conn); ok {
		cr.TLS = true
		if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
			cr.ClientCertificate = st.PeerCertificates[0]
		}
	}
	c.s.authMu.Lock()
	if len(c.s.connects) >= maxConnects {
		c.s.connects = append(c.s.connects[:0], c.s.connects[len(c.s.connects)-maxConnects/2:]...)
	}
	c.s.connects = append(c.s.connects, cr)
	c.s.authMu.Unlock()
	if c.s.opts.Authenticate == nil {
		return true
	}
	if err := c.s.opts.Authenticate(cr); err != nil {
		msg := err.Error()
		if msg == "" {
			msg = errAuthRefused
		}
		c.s.log.Info("connection refused: authentication failed", "remote", c.remote, "method", cr.Method, "err", err)
		c.sendError(0, pb.ServerError_AuthenticationError, msg)
		return false
	}
	return true
}

// Connects are the credentials of the CONNECTs so far (the newest few
// thousand), oldest first (a copy).
func (s *Server) Connects() []Credentials {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	return append([]Credentials(nil), s.connects...)
}

// RequireToken is an Options.Authenticate that accepts the "token" method
// with a token that valid reports as valid, as a broker with
// AuthenticationProviderToken does.
func RequireToken(valid func(token string) bool) func(Credentials) error {
	return func(c Credentials) error {
		if c.Method != "token" || c.Data == "" {
			return errors.New("authentication required: no token")
		}
		if !valid(c.Data) {
			return errors.New("invalid token")
		}
		return nil
	}
}
