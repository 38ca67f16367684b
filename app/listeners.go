package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/metrics"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// listen opens the data-plane listener (HTTPS with http.tlsCertFile) and,
// with management.listen, the management listener (issue 16).
func (a *App) listen(ctx context.Context) error {
	cfg := &a.cfg
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("app: listen %s: %w", cfg.Listen, err)
	}
	if cfg.HTTP.TLSCertFile != "" {
		certs, err := newCertReloader(cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile)
		if err != nil {
			_ = ln.Close()
			return err
		}
		a.certs = certs
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get, NextProtos: []string{"h2", "http/1.1"}})
	}
	a.ln = ln
	a.httpSrv = &http.Server{
		Handler:           a.proxy,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.ReadTimeout + cfg.HTTP.RequestTimeout + 5*time.Second,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.log.With("component", "http").Handler(), slog.LevelWarn),
	}
	if cfg.Management.Listen != "" {
		mln, err := lc.Listen(ctx, "tcp", cfg.Management.Listen)
		if err != nil {
			return fmt.Errorf("app: listen management %s: %w", cfg.Management.Listen, err)
		}
		a.mgmtLn = mln
		a.mgmtSrv = &http.Server{
			Handler:           a.managementHandler(),
			ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
			ReadTimeout:       cfg.HTTP.ReadTimeout,
			// pprof's profile and trace run for their ?seconds= (30 by default).
			WriteTimeout: 2 * time.Minute,
			IdleTimeout:  cfg.HTTP.IdleTimeout,
			ErrorLog:     slog.NewLogLogger(a.log.With("component", "management").Handler(), slog.LevelWarn),
		}
		go func() {
			if err := a.mgmtSrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("management listener failed", "err", err)
			}
		}()
	}
	go func() {
		err := a.httpSrv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		a.serveErr <- err
	}()
	return nil
}

// dataPlaneMetrics is what serves /metrics on the data plane: nothing once
// a management listener is set.
func (a *App) dataPlaneMetrics() http.Handler {
	if a.cfg.Management.Listen != "" {
		return nil
	}
	return metrics.Handler(a.reg)
}

// managementHandler serves /metrics, /healthz and /readyz (the data
// plane's own probes, so both ports answer them alike) and, with
// management.pprof, /debug/pprof/.
func (a *App) managementHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+proxy.RouteMetrics, metrics.Handler(a.reg))
	mux.Handle("GET "+proxy.RouteHealthz, a.proxy)
	mux.Handle("GET "+proxy.RouteReadyz, a.proxy)
	if a.cfg.Management.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// stopManagement closes the management listener: after the data plane,
// so probes and scrapes see the drain.
func (a *App) stopManagement(ctx context.Context, step func(string, func() error)) {
	if a.mgmtSrv == nil {
		return
	}
	step("management http", func() error {
		err := a.mgmtSrv.Shutdown(ctx)
		if err != nil {
			_ = a.mgmtSrv.Close()
		}
		return err
	})
}

// ManagementAddr is the management listener's address, "" when there is
// none.
func (a *App) ManagementAddr() string {
	if a.mgmtLn == nil {
		return ""
	}
	return a.mgmtLn.Addr().String()
}

// scheme is the data plane's URL scheme.
func (a *App) scheme() string {
	if a.cfg.HTTP.TLSCertFile != "" {
		return "https"
	}
	return "http"
}

// certReloader serves the data plane's certificate and swaps it when its
// files change (reload, from the secrets loop). A pair that does not load
// (a rotation caught half-written) keeps the last good one.
type certReloader struct {
	certFile, keyFile string

	mu              sync.RWMutex
	cert            *tls.Certificate
	certPEM, keyPEM []byte
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.reload(); err != nil {
		return nil, fmt.Errorf("app: http.tlsCertFile/tlsKeyFile: %w", err)
	}
	return r, nil
}

// reload reads both files and swaps the certificate when they changed.
func (r *certReloader) reload() (bool, error) {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return false, err
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return false, err
	}
	r.mu.RLock()
	same := bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM)
	r.mu.RUnlock()
	if same {
		return false, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	r.cert, r.certPEM, r.keyPEM = &pair, certPEM, keyPEM
	r.mu.Unlock()
	return true, nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert, nil
}
