package app

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/durable"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/pulsaradm"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
)

// startDurable builds the produce path's durability (issue 4, ADR 050):
// retry with backoff, a circuit breaker per cluster, the disaster-recovery
// cluster when pulsar.drURL is set, and the local spool under
// <dataDir>/spool with its replayer.
func (a *App) startDurable(poolm *produce.PoolMetrics) error {
	cfg := &a.cfg
	opts := durable.Options{
		Primary:        durable.Cluster{Name: cfg.ClusterName(), Sender: &produce.PulsarSender{Pool: a.pool, Cluster: cfg.ClusterName()}},
		SpoolDir:       filepath.Join(cfg.DataDir, "spool"),
		Spool:          spool.Options{MaxBytes: int64(cfg.Durability.SpoolMaxBytes)},
		RequestTimeout: cfg.HTTP.RequestTimeout,
		AttemptTimeout: a.attemptTimeout(),
		Recorder:       a.rec,
		Node:           cfg.Node,
		Registerer:     a.reg,
		Logger:         a.log,
	}
	if cfg.Pulsar.DRURL != "" {
		name := a.drName()
		copts, err := a.drOptions()
		if err != nil {
			return err
		}
		// The same client metrics as the primary's, labelled cluster=<name>.
		copts.MetricsRegisterer = prometheus.WrapRegistererWith(prometheus.Labels{"cluster": name}, a.reg)
		client, err := pulsar.NewClient(copts)
		if err != nil {
			return fmt.Errorf("app: pulsar client for the disaster-recovery cluster %s: %w", cfg.Pulsar.DRURL, err)
		}
		a.drClient = client
		if a.drConsumerClient, err = pulsar.NewClient(copts); err != nil {
			return fmt.Errorf("app: pulsar consumer client for the disaster-recovery cluster %s: %w", cfg.Pulsar.DRURL, err)
		}
		a.drPool = produce.NewPool(client, a.poolOptions(poolm))
		a.drPool.Start()
		opts.DR = &durable.Cluster{Name: name, Sender: &produce.PulsarSender{Pool: a.drPool, Cluster: name}}
	}
	d, err := durable.New(opts)
	if err != nil {
		return fmt.Errorf("app: durable sender: %w", err)
	}
	a.durable = d
	return nil
}

// pushDurableStops registers the stop hooks of what startDurable starts,
// each for the part that did start: the durable sender first (it drains
// the spool while a cluster takes it; the rest stays on disk), then the
// disaster-recovery producers and clients.
func (a *App) pushDurableStops() {
	a.stops.Push("disaster-recovery pulsar client", func(ctx context.Context) error {
		if a.drClient == nil {
			return nil
		}
		return closeClient(a.drClient)(ctx)
	})
	a.stops.Push("disaster-recovery pulsar consumer client", func(ctx context.Context) error {
		if a.drConsumerClient == nil {
			return nil
		}
		return closeClient(a.drConsumerClient)(ctx)
	})
	a.stops.Push("disaster-recovery producers", func(ctx context.Context) error {
		if a.drPool == nil {
			return nil
		}
		return a.drPool.Close(ctx)
	})
	a.stops.Push("durable sender", func(ctx context.Context) error {
		if a.durable == nil {
			return nil
		}
		return a.durable.Close(ctx)
	})
}

// poolOptions are the producer pool's options, the same for every cluster.
func (a *App) poolOptions(pm *produce.PoolMetrics) produce.PoolOptions {
	p := &a.cfg.Producer
	return produce.PoolOptions{
		MaxProducers:            p.MaxProducers,
		IdleTimeout:             p.IdleTimeout,
		BatchingMaxPublishDelay: p.BatchingMaxPublishDelay,
		BatchingMaxMessages:     uint(p.BatchingMaxMessages),
		BatchingMaxBytes:        uint(p.BatchingMaxBytes),
		MaxPendingMessages:      p.MaxPendingMessages,
		// The client gives up on a send exactly when the durable sender
		// abandons the attempt: a send it gave up on does not linger in the
		// client's queue to be stored late (a duplicate, same uid) when the
		// broker comes back.
		SendTimeout: a.attemptTimeout(),
		Metrics:     pm,
		Logger:      a.log,
	}
}

// attemptTimeout is durability.attemptTimeout, at most half the request
// deadline so that a dead cluster leaves time for another one or the spool.
func (a *App) attemptTimeout() time.Duration {
	return min(a.cfg.Durability.AttemptTimeout, a.cfg.HTTP.RequestTimeout/2)
}

// drName names the disaster-recovery cluster in results and events.
func (a *App) drName() string {
	if a.cfg.Pulsar.DRCluster != "" {
		return a.cfg.Pulsar.DRCluster
	}
	return "dr"
}

// pulsarAdmin is the primary cluster's one admin REST client, shared by
// the consume service (backlog, peeks) and the console; nil when there is
// no admin URL. It is built on first use and closed at stop.
func (a *App) pulsarAdmin() (*pulsaradm.Client, error) {
	url := a.adminURL()
	if a.admin != nil || url == "" {
		return a.admin, nil
	}
	// The primary's TLS and its current credential (a rotated token file,
	// OAuth2) on every call, for the console and the consume API alike.
	hc, err := a.primaryConn.adminHTTPClient(url)
	if err != nil {
		return nil, err
	}
	c, err := pulsaradm.NewWithProvider(&config.Config{WebServiceURL: url}, hc.Transport.(*bearerTransport))
	if err != nil {
		return nil, fmt.Errorf("app: pulsar admin client for %s: %w", url, err)
	}
	a.admin = c
	a.stops.Push("pulsar admin client", func(context.Context) error { return c.Close() })
	return c, nil
}

// adminURL is the primary cluster's admin REST: the embedded broker's, or
// pulsar.adminURL ("" when not configured).
func (a *App) adminURL() string {
	if a.broker != nil {
		return a.broker.AdminURL()
	}
	return a.cfg.Pulsar.AdminURL
}

// primaryDown reports that the primary cluster's circuit breaker is open:
// the delay engine then schedules level and native messages on the wheel
// (EngineOptions.PrimaryDown).
func (a *App) primaryDown() bool {
	if a.durable == nil {
		return false
	}
	return a.durable.PrimaryOpen()
}
