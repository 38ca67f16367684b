package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/embedredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// startBroker starts the embedded minipulsar, persistent in
// <dataDir>/minipulsar unless embedded.persist is off.
func startBroker(cfg *config.Config, log *slog.Logger) (*minipulsar.Server, error) {
	opts := minipulsar.Options{
		Addr:      cfg.Embedded.PulsarListen,
		AdminAddr: cfg.Embedded.PulsarAdminListen,
		Logger:    log,
		// A convenience of the embedded mode that Pulsar does not have: the
		// tenant and namespace of any topic the sidecar's users produce to or
		// consume from are created on first use, so one command is enough.
		// On a real cluster they must be created first (minipulsar/README.md).
		Namespaces: minipulsar.AutoCreateNamespaces,
	}
	if cfg.Embedded.Persist {
		opts.DataDir = filepath.Join(cfg.DataDir, "minipulsar")
		if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("app: embedded broker data dir: %w", err)
		}
	}
	b := minipulsar.NewServer(opts)
	err := b.Start()
	if err != nil {
		return nil, fmt.Errorf("app: start embedded broker: %w", err)
	}
	return b, nil
}

// startRedis starts the embedded Redis: miniredis with TTLs that run in
// real time, its keyspace kept in <dataDir>/redis unless embedded.persist
// is off (package embedredis, docs/adr/080-embedded-redis.md).
func startRedis(cfg *config.Config, log *slog.Logger) (*embedredis.Server, error) {
	opts := embedredis.Options{
		SnapshotInterval: cfg.Embedded.RedisSnapshotInterval,
		DB:               cfg.Redis.DB,
		Logger:           log,
	}
	if cfg.Embedded.Persist {
		opts.Dir = filepath.Join(cfg.DataDir, "redis")
	}
	s, err := embedredis.Start(opts)
	if err != nil {
		return nil, fmt.Errorf("app: start embedded redis: %w", err)
	}
	return s, nil
}

// pulsarLogger gives the client a logger that only speaks up from Warn: at
// Info it logs every producer creation and reconnection.
func pulsarLogger(log *slog.Logger) pulsarlog.Logger {
	h := log.With("component", "pulsar-client").Handler()
	return pulsarlog.NewLoggerWithSlog(slog.New(minLevel{Handler: h, min: slog.LevelWarn}))
}

type minLevel struct {
	slog.Handler
	min     slog.Level
	errText string // the "error" attribute given through WithAttrs, if any
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

// expectedClientNoise are pulsar-client-go v0.19 ERROR lines that say
// nothing failed: a consumer closed right after it was created (the
// consume API replaces a subscription's consumers when it is registered
// again) has its first redelivery and initial permits refused by its own
// closing state. They are demoted to debug (issue 14).
var expectedClientNoise = map[string]bool{
	"Failed to redeliver closing or closed consumer": true,
	"unable to send initial permits to broker":       true,
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && expectedClientNoise[r.Message] && m.closingNoise(r) {
		r.Level = slog.LevelDebug
		if r.Level < m.min || !m.Handler.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return m.Handler.Handle(ctx, r)
}

// closingNoise: the line is about a consumer that is closing (its error,
// when it has one, says so), not a failure of a live one.
func (m minLevel) closingNoise(r slog.Record) bool {
	if m.errText != "" && !strings.Contains(m.errText, "closing or closed") {
		return false
	}
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" && !strings.Contains(a.Value.String(), "closing or closed") {
			ok = false
			return false
		}
		return true
	})
	return ok
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	errText := m.errText
	for _, a := range as {
		if a.Key == "error" {
			errText = a.Value.String()
		}
	}
	return minLevel{m.Handler.WithAttrs(as), m.min, errText}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.min, m.errText}
}

// startIdempotency makes the embedded mode's idempotency store: the
// records in this process, logged in <dataDir>/idempotency unless
// embedded.persist is off (proxy.LocalIdempotency, ADR 080's revision).
// Records an earlier version left in the embedded Redis move over. With a
// real Redis it does nothing: the store is Redis.
func (a *App) startIdempotency(ctx context.Context) error {
	if a.mredis == nil {
		return nil
	}
	cfg := &a.cfg
	var l *proxy.IdempotencyLog
	if cfg.Embedded.Persist {
		var err error
		if l, err = proxy.OpenIdempotencyLog(filepath.Join(cfg.DataDir, "idempotency"), cfg.Embedded.RedisSnapshotInterval, a.log); err != nil {
			return err
		}
	}
	s := proxy.NewLocalIdempotency(cfg.Idempotency.TTL, cfg.Idempotency.Lease, l)
	a.localIdem = s
	a.stops.Push("idempotency store", func(context.Context) error { return s.Close() })
	return a.importIdempotency(ctx, s)
}

// importIdempotency moves the idempotency records an earlier version kept
// in the embedded Redis into s, keeping their TTLs.
func (a *App) importIdempotency(ctx context.Context, s *proxy.LocalIdempotency) error {
	rdb, err := a.newRedis(nil)
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	n := 0
	iter := rdb.Scan(ctx, 0, proxy.KeyPrefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := rdb.Get(ctx, k).Result()
		if err != nil {
			continue // gone meanwhile, or a hash of a much older version: left alone
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 {
			continue
		}
		s.Import(k, v, time.Now().Add(ttl))
		if err := rdb.Del(ctx, k).Err(); err != nil {
			return fmt.Errorf("app: move idempotency records out of the embedded redis: %w", err)
		}
		n++
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("app: move idempotency records out of the embedded redis: %w", err)
	}
	if n > 0 {
		a.log.Info("idempotency records moved from the embedded redis to the idempotency store", "keys", n)
	}
	return nil
}

// idempotency is the produce path's idempotency store: the local one in
// the embedded mode, Redis otherwise.
func (a *App) idempotency() proxy.IdempotencyStore {
	if a.localIdem != nil {
		return a.localIdem
	}
	return proxy.NewRedisIdempotency(a.rdb, a.cfg.Idempotency.TTL, a.cfg.Idempotency.Lease, a.cfg.Redis.Timeout)
}
