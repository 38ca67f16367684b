package tracer

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrFingerprint is returned (wrapped) by a TLS handshake with an
// Elasticsearch server whose certificate chain holds no certificate with
// the pinned fingerprint.
var ErrFingerprint = errors.New("tracer: elasticsearch certificate does not match the pinned fingerprint")

// elasticTLS is the TLS configuration of the store's transport: nil (the
// system's roots) unless a CA or a fingerprint is given. A fingerprint pins
// the certificate instead of verifying a chain, as Elasticsearch's own
// clients do with ca_trusted_fingerprint: the server's self-signed setup
// certificate has no CA the client could hold.
func elasticTLS(caPEM []byte, fingerprint string) (*tls.Config, error) {
	if len(caPEM) == 0 && fingerprint == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("tracer: elasticsearch CA: no PEM certificate")
		}
	}
	if fingerprint != "" {
		want, err := hex.DecodeString(strings.ReplaceAll(fingerprint, ":", ""))
		if err != nil || len(want) != sha256.Size {
			return nil, errors.New("tracer: elasticsearch certificate fingerprint: want the 64 hex digits of a SHA-256")
		}
		roots := c.RootCAs
		c.InsecureSkipVerify = true //nolint:gosec // pinned in VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			for _, cert := range cs.PeerCertificates {
				sum := sha256.Sum256(cert.Raw)
				if bytes.Equal(sum[:], want) {
					if roots == nil {
						return nil
					}
					// With a CA too, the chain must also verify.
					opts := x509.VerifyOptions{Roots: roots, DNSName: cs.ServerName, Intermediates: x509.NewCertPool()}
					for _, ic := range cs.PeerCertificates[1:] {
						opts.Intermediates.AddCert(ic)
					}
					_, err := cs.PeerCertificates[0].Verify(opts)
					return err
				}
			}
			return fmt.Errorf("%w (%d certificates presented)", ErrFingerprint, len(cs.PeerCertificates))
		}
	}
	return c, nil
}
