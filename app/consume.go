package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/consume"
	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// startConsume builds the HTTP consume API (issue 5): subscriptions with
// tag filters registered in Redis, long-poll receive, ack and nack by
// signed ackIds that any replica accepts, dead letters, and messages from
// the disaster-recovery cluster merged in (docs/adr/060-consume.md).
func (a *App) startConsume(ctx context.Context) error {
	cfg := &a.cfg
	sv, err := config.SecretValue(cfg.Consume.Secret, cfg.Consume.SecretFile)
	if err != nil {
		return fmt.Errorf("app: consume.secretFile: %w", err)
	}
	if n := len(sv); n > 0 && n < 16 {
		return fmt.Errorf("app: consume.secretFile %s: the secret must be at least 16 bytes, got %d", cfg.Consume.SecretFile, n)
	}
	secret := []byte(sv)
	if len(secret) == 0 {
		// Fine for one sidecar; replicas behind one load balancer need the
		// same consume.secret, or one's ackIds are refused by the others.
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return fmt.Errorf("app: consume secret: %w", err)
		}
		if !cfg.EmbeddedPulsar() {
			a.log.Warn("consume.secret is not set: ackIds are signed with a random key only this process accepts; set the same consume.secret on every replica")
		}
	}
	clusters := []consume.Cluster{{Name: cfg.ClusterName(), Client: a.consumerClient, Producers: a.client}}
	if a.drConsumerClient != nil {
		clusters = append(clusters, consume.Cluster{Name: a.drName(), Client: a.drConsumerClient, Producers: a.drClient})
	}
	// The delivery-state scripts must not run twice: a go-redis retry after
	// a read timeout runs a lease again, which then finds the lease it has
	// just written and holds its own message off for a whole ack timeout.
	// So the consume service gets a client of its own without retries,
	// whose socket timeouts are its per-call deadline rather than the
	// produce path's redis.timeout (500ms, which a script's first run can
	// exceed on a busy machine).
	if a.consumeRDB, err = a.newRedis(consumeRedisTweak); err != nil {
		return err
	}
	opts := consume.Options{
		Redis:      a.consumeRDB,
		Clusters:   clusters,
		Secret:     secret,
		Node:       cfg.Node,
		Recorder:   a.rec,
		Registerer: a.reg,
		Logger:     a.log, // the service names itself

		State: consume.StateOptions{RedisTimeout: consumeRedisTimeout},
		TagBacklog: consume.TagBacklogOptions{
			ScanMessages: cfg.Consume.BacklogScanMessages,
			ScanEntries:  cfg.Consume.BacklogScanEntries,
			ScanTime:     cfg.Consume.BacklogScanTime,
			Interval:     cfg.Consume.BacklogInterval,
		},
	}
	opts.State.RegistryKeyPrefix = a.registryPrefix() // one hash tag on Redis Cluster (redis.go)
	if opts.TagBacklog.Interval == 0 {
		opts.TagBacklog.Interval = -1 // consume.Options: negative is never, 0 the default
	}
	if a.delay != nil {
		opts.Retry = a.scheduleRetry
	}
	adm, err := a.pulsarAdmin()
	if err != nil {
		return err
	}
	if adm != nil {
		opts.Backlog = consume.AdminBacklog(adm.Admin())
		opts.Peeker = consume.PeekerOf(adm)
	}
	svc, err := consume.New(opts)
	if err != nil {
		return fmt.Errorf("app: consume service: %w", err)
	}
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("app: start consume service: %w", err)
	}
	a.consume = svc
	return nil
}

// mountConsume adds the consume API to the authenticated /v1 group.
func (a *App) mountConsume(v1 *gin.RouterGroup) {
	a.consume.Register(v1, consume.HTTPOptions{
		AppFromContext: proxy.AppFromContext,
		// The sidecar's own topics (delay levels, the health probe) are
		// nobody's to read: a level topic holds every app's messages
		// before they are due, and a subscription with the forwarders'
		// name would take them away from the forwarders (403 FORBIDDEN).
		MayConsumeContext: func(c *gin.Context, tenant, namespace, topic string) bool {
			return !proxy.IsInternalTopic(tenant, namespace, topic) && proxy.MayConsume(c, tenant, namespace, topic)
		},
		// Dead letters are written on the app's behalf: a named
		// dead-letter topic must be one the app may produce to.
		MayDeadLetterContext: func(c *gin.Context, tenant, namespace, topic string) bool {
			return !proxy.IsInternalTopic(tenant, namespace, topic) && proxy.MayProduce(c, tenant, namespace, topic)
		},
		OnError: func(_ *gin.Context, e *consume.Error) { a.proxyMetrics.AddError(e.Code) },
	})
}

// scheduleRetry is the consume API's retry hook: the next copy of a message
// nacked with retry goes to the delay engine, due at the plan's next step.
// deliverAt goes to the timing wheel in the default mode, which re-publishes
// it to the real topic with its uid, key, tags and properties, so every
// subscription of the topic sees it again (one-second precision, never
// early). Each step is its own entry in the wheel's index (uid/retry-n):
// the consumer can receive step n and nack it again before the wheel has
// removed step n's entry, and under the bare uid step n+1 would be taken
// for a repeat of it and dropped. A repeated nack of one step still finds
// its entry and stores nothing new.
func (a *App) scheduleRetry(ctx context.Context, m consume.RetryMessage) error {
	_, err := a.delay.Schedule(ctx, delay.Request{
		UID: m.UID, App: m.App, Topic: m.Topic, Key: m.Key, Tags: m.Tags,
		Properties: m.Properties, Payload: m.Payload, EventTime: m.EventTime,
		DeliverAt: m.DueAt, AcceptedAt: time.Now(),
		IndexID: m.UID + "/retry-" + strconv.Itoa(m.Step),
	})
	if err != nil {
		return fmt.Errorf("app: schedule retry %d of %s: %w", m.Step, m.UID, err)
	}
	return nil
}

// consumeRedisTimeout bounds each Redis call of the consume service.
const consumeRedisTimeout = 2 * time.Second
