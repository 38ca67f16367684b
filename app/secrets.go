package app

import (
	"context"
	"os"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// WithReloadSignal makes the app re-read its secret files whenever ch
// receives (the binary passes SIGHUP), besides every
// secrets.reloadInterval.
func WithReloadSignal(ch <-chan os.Signal) Option { return func(a *App) { a.reloadSig = ch } }

// primaryOptions builds the primary cluster's connection (token, OAuth2,
// TLS) and its client options. In the embedded mode the URL is the
// embedded broker's.
func (a *App) primaryOptions() (pulsar.ClientOptions, error) {
	p := &a.cfg.Pulsar
	c, err := newPulsarConn("pulsar", primaryKeys, a.pulsarURL, p.TLS, p.AuthToken, p.AuthTokenFile, p.OAuth2)
	if err != nil {
		return pulsar.ClientOptions{}, err
	}
	a.primaryConn = c
	return a.pulsarOptions(c)
}

// drOptions is primaryOptions for the disaster-recovery cluster.
func (a *App) drOptions() (pulsar.ClientOptions, error) {
	p := &a.cfg.Pulsar
	c, err := newPulsarConn("pulsar (disaster recovery)", drKeys, p.DRURL, p.DRTLS, p.DRAuthToken, p.DRAuthTokenFile, p.DROauth2)
	if err != nil {
		return pulsar.ClientOptions{}, err
	}
	a.drConn = c
	return a.pulsarOptions(c)
}

// startReload starts the loop that re-reads secret files every
// secrets.reloadInterval and on the reload signal.
func (a *App) startReload() {
	interval := a.cfg.Secrets.ReloadInterval
	if interval <= 0 && a.reloadSig == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.reloadStop = cancel
	a.reloadDone = make(chan struct{})
	go func() {
		defer close(a.reloadDone)
		var tick <-chan time.Time
		if interval > 0 {
			t := time.NewTicker(interval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick:
			case <-a.reloadSig:
				a.log.Info("reloading secret files (signal)")
			}
			a.ReloadSecrets()
		}
	}()
}

// stopReload ends the reload loop and the Pulsar connections' providers.
func (a *App) stopReload() {
	if a.reloadStop != nil {
		a.reloadStop()
		<-a.reloadDone
	}
	for _, c := range []*pulsarConn{a.primaryConn, a.drConn} {
		if c != nil {
			c.close()
		}
	}
}

// ReloadSecrets re-reads the Pulsar token files and the HTTP certificate
// now. A file that cannot be read keeps the last good value and is logged.
func (a *App) ReloadSecrets() {
	for _, c := range []*pulsarConn{a.primaryConn, a.drConn} {
		if c == nil {
			continue
		}
		file, changed, err := c.reloadSecrets()
		switch {
		case err != nil:
			a.log.Warn("secret file not reloaded; the last good value stays", "setting", c.what+" token", "err", err)
		case changed:
			a.log.Info("secret file rotated; new connections use it", "setting", c.what+" token", "file", file)
		}
	}
	if a.certs != nil {
		if changed, err := a.certs.reload(); err != nil {
			a.log.Warn("HTTP certificate not reloaded; the last good one stays", "err", err)
		} else if changed {
			a.log.Info("HTTP certificate rotated", "file", a.cfg.HTTP.TLSCertFile)
		}
	}
}
