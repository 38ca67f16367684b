package consume

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/redis/go-redis/v9"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/group"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/metrics"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Clock is the engine's source of time: leases, ack timeouts, nack delays,
// ackId expiry and idle detection. minipulsar.FakeClock satisfies it.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once after d; stop cancels it.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Cluster is one Pulsar cluster the engine consumes from.
type Cluster struct {
	Name   string // in dead-letter properties and trace events, e.g. "primary", "dr"
	Client pulsar.Client
	// Producers, when set, creates the dead-letter producers, so that a
	// producer's connection closing (a SEND crossing a topic unload) does
	// not touch the consumers' connection (ADR 060); nil uses Client.
	Producers pulsar.Client
}

// producers is the client dead-letter producers are created on.
func (c Cluster) producers() pulsar.Client {
	if c.Producers != nil {
		return c.Producers
	}
	return c.Client
}

// Service is the consume engine of one replica. Every method is safe for
// concurrent use. Start it before use and Close it after the HTTP server
// has stopped; Close does not close the Pulsar clients or Redis.
type Service struct {
	opts     Options
	log      *slog.Logger
	clock    Clock
	rdb      redis.UniversalClient
	signer   *signer
	registry *Registry
	cache    *configCache
	states   *states
	rec      tracer.Recorder
	metrics  *Metrics
	node     uint64        // this process's replica id in ackIds, random
	flushSeq atomic.Uint64 // names stats flushes (flushStats)

	backlog backlogCache

	mu      sync.Mutex
	engines map[string]*engine
	started bool
	closed  bool
	pubsub  *redis.PubSub

	quit chan struct{}
	bg   group.Group // background work: peer loop, housekeeping, backlog scans, late subscribes
}

// New builds a Service; it fails on invalid options.
func New(opts Options) (*Service, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	sg, err := newSigner(opts.Secret, opts.PreviousSecrets)
	if err != nil {
		return nil, err
	}
	s := &Service{opts: opts, log: opts.Logger, clock: opts.Clock, rdb: opts.Redis, signer: sg, rec: opts.Recorder,
		engines: map[string]*engine{}, quit: make(chan struct{})}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "consume")
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.rec == nil {
		s.rec = tracer.Nop{}
	}
	s.metrics = NewMetrics(metrics.OrDiscard(opts.Registerer), opts.Stats.MaxTagLabels)
	var b [8]byte
	_, _ = rand.Read(b[:])
	s.node = binary.BigEndian.Uint64(b[:])
	s.registry = NewRegistry(s.rdb, opts.State.RegistryKeyPrefix, opts.State.RedisTimeout)
	s.cache = newConfigCache(s.registry, opts.State.ConfigRefresh, s.clock.Now)
	s.states = &states{rdb: s.rdb, prefix: opts.State.KeyPrefix, timeout: opts.State.RedisTimeout, dedup: opts.State.DedupWindow}
	return s, nil
}

// Registry returns the subscription registry (for the console).
func (s *Service) Registry() *Registry { return s.registry }

// Start loads the Redis scripts and subscribes to this replica's channel,
// on which peers forward acks and nacks of messages it handed out.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("consume: Start called twice or after Close")
	}
	lctx, cancel := context.WithTimeout(ctx, s.opts.State.RedisTimeout)
	defer cancel()
	if err := s.states.load(lctx); err != nil {
		return fmt.Errorf("consume: load Redis scripts: %w", err)
	}
	if n := s.states.legacyKeys(lctx); n > 0 {
		s.log.Warn("delivery state of the one-key-per-message layout (psc:cs:) found in Redis: replicas of an older version may still be consuming, and the two layouts do not see each other; stop them (docs/adr/060-consume.md, upgrading)",
			"keys_seen", n)
	}
	ps := s.rdb.Subscribe(ctx, s.nodeChannel(s.node))
	if _, err := ps.Receive(lctx); err != nil {
		_ = ps.Close()
		return fmt.Errorf("consume: subscribe to the peer channel: %w", err)
	}
	s.pubsub = ps
	s.started = true
	s.goFunc(func() { s.peerLoop(ps.Channel()) })
	s.goFunc(s.housekeeping)
	if s.opts.TagBacklog.Interval > 0 {
		s.goFunc(s.backlogLoop)
	}
	return nil
}

// goFunc runs f in the background work Close waits for; once Close has
// begun, f does not run.
func (s *Service) goFunc(f func()) { s.bg.Go(f) }

// Close closes every subscription's consumers (the broker redelivers what
// they held), flushes stats and stops the background work. Idempotent.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	engines := make([]*engine, 0, len(s.engines))
	for _, e := range s.engines {
		engines = append(engines, e)
	}
	clear(s.engines)
	ps := s.pubsub
	close(s.quit)
	s.mu.Unlock()
	err := group.WaitContext(ctx, func() {
		var wg sync.WaitGroup
		for _, e := range engines {
			wg.Go(e.close)
		}
		wg.Wait()
		if ps != nil {
			_ = ps.Close()
		}
		_ = s.bg.Wait(context.Background())
	})
	if err != nil {
		return fmt.Errorf("consume: close: %w", err)
	}
	s.metrics.setEngines(0)
	return nil
}

// Caller is who makes a request, for trace events.
type Caller struct {
	App      string
	ClientIP string
	// Consumer is the worker's name from the request body (consumer);
	// trace events name the app when it is empty.
	Consumer string
}

// config returns the registration, mapping errors to *Error.
func (s *Service) config(ctx context.Context, ref SubscriptionRef) (*Subscription, error) {
	cfg, err := s.cache.get(ctx, ref)
	return s.found(ref, cfg, err)
}

// found maps the error of a registration lookup (the registry or its
// cache) to *Error: NOT_FOUND, or a store error that is counted.
func (s *Service) found(ref SubscriptionRef, sub *Subscription, err error) (*Subscription, error) {
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, notFound(ref)
	case err != nil:
		s.metrics.addStoreError()
		return nil, storeError(err)
	}
	return sub, nil
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
