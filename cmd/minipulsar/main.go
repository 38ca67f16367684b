// Command minipulsar runs the in-process test broker standalone, so any
// Pulsar client or tool can point at it. It is a test and development
// broker, not a production one.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6650", "binary protocol listen address")
	adminAddr := flag.String("admin-addr", "127.0.0.1:8080", "HTTP admin and lookup listen address")
	dataDir := flag.String("data-dir", "", "directory that keeps topics, messages and cursors across restarts (empty: in memory)")
	cacheMB := flag.Int64("entry-cache-mb", minipulsar.DefaultEntryCacheSize>>20, "with --data-dir: MiB of message bytes kept in memory; entries every subscription has read, and the oldest past this bound, are read back from disk when needed")
	dedup := flag.Bool("dedup", false, "enable broker deduplication by producer name and sequence id")
	autoNS := flag.Bool("auto-create-namespaces", false, "create a topic's tenant and namespace on first use (Pulsar does not; by default they must be created, public/default exists)")
	level := flag.String("log-level", "info", "log level: debug, info, warn, error")
	tlsCert := flag.String("tls-cert", "", "PEM certificate: serve TLS only (pulsar+ssl:// and https://) on both addresses")
	tlsKey := flag.String("tls-key", "", "PEM private key of --tls-cert")
	tlsClientCA := flag.String("tls-client-ca", "", "PEM CA file: require client certificates it signs (mutual TLS)")
	flag.Parse()
	tlsConfig, err := serverTLS(*tlsCert, *tlsKey, *tlsClientCA)
	if err != nil {
		fmt.Fprintln(os.Stderr, "minipulsar:", err)
		os.Exit(2)
	}

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "minipulsar: bad --log-level %q: %v\n", *level, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	namespaces := minipulsar.RequireNamespaces
	if *autoNS {
		namespaces = minipulsar.AutoCreateNamespaces
	}
	s := minipulsar.NewServer(minipulsar.Options{
		Addr:           *addr,
		AdminAddr:      *adminAddr,
		DataDir:        *dataDir,
		EntryCacheSize: *cacheMB << 20,
		Deduplication:  *dedup,
		Namespaces:     namespaces,
		Logger:         log,
		TLS:            tlsConfig,
	})
	if err := s.Start(); err != nil {
		log.Error("start failed", "err", err)
		os.Exit(1)
	}
	log.Info("minipulsar is a test and development broker, not a production one",
		"serviceURL", s.ServiceURL(), "adminURL", s.AdminURL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	log.Info("stopping")
	if err := s.Close(); err != nil {
		log.Error("close failed", "err", err)
		os.Exit(1)
	}
}

// serverTLS builds the listeners' TLS configuration from the flags; nil
// without --tls-cert.
func serverTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		if clientCA != "" {
			return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA) //nolint:gosec // the operator's flag
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		c.ClientCAs = x509.NewCertPool()
		if !c.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca %s: no PEM certificate", clientCA)
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}
