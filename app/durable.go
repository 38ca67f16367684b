package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsar-sidecar/pulsar-sidecar/durable"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
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

// durableSender answers durable's errors the data plane's way.
type durableSender struct{ d *durable.Sender }

var _ produce.Sender = durableSender{}

func (s durableSender) SendAsync(ctx context.Context, m *produce.Message, done func(produce.Receipt, error)) {
	s.d.SendAsync(ctx, m, func(rc produce.Receipt, err error) {
		done(rc, durableError(err))
	})
}

const retrySame = "; the message may or may not be stored: retry with the same idempotency key"

// durableError maps durable's errors to answers (ADR 050).
func durableError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, durable.ErrSpoolFull):
		return &proxy.Error{Status: http.StatusServiceUnavailable, Code: proxy.CodeSpoolFull,
			Message: "no cluster took the message in time and the local spool is full" + retrySame, RetryAfter: 5 * time.Second, Err: err}
	case errors.Is(err, durable.ErrSpoolWrite):
		return &proxy.Error{Status: http.StatusServiceUnavailable, Code: proxy.CodeSpoolWriteFailed,
			Message: "no cluster took the message in time and writing the local spool failed" + retrySame, RetryAfter: 5 * time.Second, Err: err}
	case errors.Is(err, durable.ErrClosed):
		return &proxy.Error{Status: http.StatusServiceUnavailable, Code: proxy.CodeShuttingDown,
			Message: "the sidecar is shutting down" + retrySame, Err: err}
	case errors.Is(err, durable.ErrRejected) && (errors.Is(err, spool.ErrTooLarge) || isMessageTooBig(err)):
		return &proxy.Error{Status: http.StatusRequestEntityTooLarge, Code: proxy.CodePayloadTooLarge,
			Message: "the broker refuses a message this large", Err: err}
	case errors.Is(err, durable.ErrRejected) && isTopicNotFound(err):
		return &proxy.Error{Status: http.StatusNotFound, Code: proxy.CodeTopicNotFound,
			Message: "the Pulsar cluster has no such topic: its tenant or namespace does not exist, or the namespace does not " +
				"allow creating topics on first use; an operator creates them (pulsar-admin tenants create / namespaces create); nothing was stored",
			Err: err}
	case errors.Is(err, durable.ErrRejected):
		return &proxy.Error{Status: http.StatusBadGateway, Code: proxy.CodeProduceRejected,
			Message: "the broker refused the message for good (see the sidecar's log); retrying the same request will not help", Err: err}
	}
	return err // deadline and others: the data plane's own mapping
}

// isTopicNotFound: the broker refused the topic as missing (Pulsar answers
// a lookup or producer on a missing tenant or namespace so). Producer
// creation reports it as text in pulsar-client-go v0.19.
func isTopicNotFound(err error) bool {
	var pe *pulsar.Error
	if errors.As(err, &pe) && pe.Result() == pulsar.TopicNotFound {
		return true
	}
	return strings.Contains(err.Error(), "TopicNotFound")
}

func isMessageTooBig(err error) bool {
	var pe *pulsar.Error
	return errors.As(err, &pe) && pe.Result() == pulsar.MessageTooBig
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
	h := a.durable.Health()
	return len(h.Clusters) > 0 && h.Clusters[0].State == durable.Open
}
