package testredis

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// CA is a certificate authority made by the test: its certificate and key
// as PEM files in a temporary directory, for servers and clients to trust
// and to sign with.
type CA struct {
	tb     testing.TB
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	CAFile string // PEM certificate of the CA
}

// NewCA makes a fresh CA (ECDSA P-256, valid for a day).
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("testredis: CA key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("testredis: CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("testredis: CA certificate: %v", err)
	}
	ca := &CA{tb: tb, dir: tb.TempDir(), cert: cert, key: key}
	ca.CAFile = ca.write("ca.pem", "CERTIFICATE", der)
	return ca
}

// Issue signs a certificate for server and client use, valid for the given
// DNS names and IP addresses, and returns its certificate and key files.
func (ca *CA) Issue(name string, hosts ...string) (certFile, keyFile string) {
	ca.tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.tb.Fatalf("testredis: key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(ca.tb),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.tb.Fatalf("testredis: certificate: %v", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.tb.Fatalf("testredis: key: %v", err)
	}
	return ca.write(name+".pem", "CERTIFICATE", der), ca.write(name+"-key.pem", "PRIVATE KEY", kb)
}

// ClientTLS is a client configuration that trusts only this CA.
func (ca *CA) ClientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func (ca *CA) write(name, typ string, der []byte) string {
	ca.tb.Helper()
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.tb.Fatalf("testredis: write %s: %v", path, err)
	}
	return path
}

func serial(tb testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatalf("testredis: serial: %v", err)
	}
	return n
}

// lookPath finds redis-server, skipping the test when it is not installed:
// the topology helpers are extras on top of Start, which fails instead.
func lookPath(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		tb.Skip(installHint)
	}
	return bin
}

// StartTLS launches a redis-server that speaks TLS only (port 0, tls-port
// on a free loopback port) with a certificate from ca for 127.0.0.1 and
// localhost. Clients need no certificate of their own unless
// requireClientCert (tls-auth-clients yes). extra arguments follow the
// defaults (an ACL user: "--user", "name", "on", ">password", "~*", "&*", "+@all").
func StartTLS(tb testing.TB, ca *CA, requireClientCert bool, extra ...string) *Server {
	tb.Helper()
	bin := lookPath(tb)
	cert, key := ca.Issue("redis-server", "127.0.0.1", "localhost")
	auth := "no"
	if requireClientCert {
		auth = "yes"
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir(), tlsClient: ca.ClientTLS()}
	if requireClientCert {
		c, k := ca.Issue("ping-client", "ping-client")
		pair, err := tls.LoadX509KeyPair(c, k)
		if err != nil {
			tb.Fatalf("testredis: client certificate: %v", err)
		}
		s.tlsClient.Certificates = []tls.Certificate{pair}
	}
	s.args = func(port int) []string {
		return append([]string{
			"--port", "0",
			"--tls-port", strconv.Itoa(port),
			"--tls-cert-file", cert,
			"--tls-key-file", key,
			"--tls-ca-cert-file", ca.CAFile,
			"--tls-auth-clients", auth,
			"--bind", "127.0.0.1",
			"--dir", s.dir,
			"--save", "",
			"--appendonly", "no",
			"--daemonize", "no",
			"--protected-mode", "no",
		}, extra...)
	}
	return start(tb, s, freePort)
}
