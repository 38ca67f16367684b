package consume

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"
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

// Options configure a Service. Redis, Clusters and Secret are required;
// zero values take the defaults noted.
type Options struct {
	// Redis holds registrations, delivery state (leases, acks, dedup) and
	// stats, and carries acks between replicas (pub/sub).
	Redis redis.UniversalClient
	// Clusters to consume from: [0] is the primary; a second one is the
	// disaster-recovery cluster. Every subscription consumes from all of
	// them and merges (duplicates by uid are dropped). The Service does
	// not close the clients.
	Clusters []Cluster
	// Secret signs ackIds (at least 16 bytes) and must be the same on every
	// replica. PreviousSecrets still verify, for rotation.
	Secret          []byte
	PreviousSecrets [][]byte

	Node     string          // this replica in trace events and consumer names; "sidecar" when empty
	Recorder tracer.Recorder // lifecycle events; tracer.Nop{} when nil
	// SkipFilteredEvents records no "filtered" event. With many
	// subscriptions on one topic each message makes one per subscription
	// it does not match; the console can tell "filtered" from the
	// registration's filter and the message's tags instead.
	SkipFilteredEvents bool
	Registerer         prometheus.Registerer // where the metrics are seen; nil: nowhere (they are still kept)
	Backlog            BacklogFunc           // backlog in Stats; none when nil
	// Peeker reads subscriptions' backlogs on the primary cluster for the
	// per-tag backlog (TagBacklog); without it only what replicas hold is
	// known.
	Peeker Peeker
	// Retry re-publishes a message nacked with "retry" to its topic, due
	// at m.DueAt (the app schedules it with the delay engine). It is called
	// while this replica holds the message exclusively; on success the
	// nacked copy is acknowledged. Nil: a nack with retry is refused (400
	// RETRY_UNAVAILABLE).
	Retry  func(ctx context.Context, m RetryMessage) error
	Logger *slog.Logger // slog.Default() when nil
	Clock  Clock        // the real clock when nil

	KeyPrefix string // Redis key prefix; "psc:"
	// RegistryKeyPrefix is the prefix of the subscription registry's keys
	// (registry.go), KeyPrefix when empty. Its scripts write a
	// subscription's hash and the two index sets together, so on Redis
	// Cluster it must carry a hash tag ("psc:{registry}:"): the whole
	// registry then lives in one slot (docs/adr/090-redis-topologies.md).
	RegistryKeyPrefix string
	Defaults          Defaults // ackTimeout 30s, maxDeliveries 16

	// DedupWindow is how long a message's delivery state (and so the memory
	// of its uid) lives after its last change: copies of a uid within it are
	// dropped, and ackIds expire after it. 10m.
	DedupWindow time.Duration

	DefaultReceive    int           // messages per receive when max is not given; 100
	MaxReceive        int           // largest max a receive may ask for; 1000
	MaxWait           time.Duration // longest waitMs; 30s
	MaxAckIDs         int           // ackIds per ack or nack; 1000
	MaxRedeliverAfter time.Duration // longest nack delay; 1h
	MaxBodyBytes      int64         // request bodies; 1 MiB

	ReceiverQueueSize   int // the Pulsar consumers' receiver queue; 100
	ConsumersPerCluster int // Pulsar consumers per subscription per cluster on this replica; 1, at most 8
	// MaxReady bounds the matching messages waiting on this replica for a
	// receive, per subscription; 500. MaxHeld bounds every message held
	// (waiting, handed out and not acked, being dead-lettered), per
	// subscription; 5000. At either bound the consumers stop reading and
	// the broker sends to other consumers.
	MaxReady int
	MaxHeld  int
	// MaxSubscriptions bounds the subscriptions consumed at once on this
	// replica; beyond it the least recently used one is closed. 1000.
	MaxSubscriptions int
	// ActiveWindow: a subscription that had a receive on this replica
	// within it is active here. An inactive one stops reading from its
	// consumers and hands what it holds back to the broker, so replicas
	// that get receives get the messages. 5s.
	ActiveWindow time.Duration
	// IdleTimeout closes a subscription's consumers on this replica after
	// that long without a receive; what they held (at most
	// ReceiverQueueSize per consumer by then) goes back to the broker. 30s.
	IdleTimeout time.Duration
	// ConfigRefresh is how stale a replica's copy of a registration may
	// be (another replica's PUT or DELETE is seen within it). 1s.
	ConfigRefresh time.Duration
	// StatsInterval is how often counts go to Redis and Prometheus. 2s.
	StatsInterval time.Duration
	// MaxStatsTags bounds distinct tags counted per subscription and
	// replica; the rest count as "_other". 10000. MaxTagLabels does the
	// same for Prometheus labels; 100.
	MaxStatsTags int
	MaxTagLabels int
	// TagBacklogScanMessages, TagBacklogScanEntries and TagBacklogScanTime
	// bound one per-tag backlog scan (10000 messages, 1000 entries, 3s);
	// past them the answer is a sample (exact false). TagBacklogCache is
	// how long an answer is reused (5s). TagBacklogInterval is how often
	// each registered subscription is scanned for Prometheus, by one
	// replica at a time (1m); negative: never.
	TagBacklogScanMessages int
	TagBacklogScanEntries  int
	TagBacklogScanTime     time.Duration
	TagBacklogCache        time.Duration
	TagBacklogInterval     time.Duration

	rateSlot     time.Duration // stats rate slot; 10s (tests shorten it)
	RedisTimeout time.Duration // each Redis round trip; 2s
	// NackRedeliveryDelay is the client's delay before a message handed
	// back to the broker is redelivered; 30ms.
	NackRedeliveryDelay time.Duration
	// DeadLetterTimeout bounds one dead-letter send; 10s. DeadLetterLease
	// is how long a replica owns a message it is dead-lettering before
	// another may try; 30s.
	DeadLetterTimeout time.Duration
	DeadLetterLease   time.Duration
	// SubscribeTimeout bounds creating the Pulsar subscription when a
	// subscription is registered; 10s.
	SubscribeTimeout time.Duration
}

func (o *Options) fill() error {
	switch {
	case o.Redis == nil:
		return errors.New("consume: Options.Redis is required")
	case len(o.Clusters) == 0:
		return errors.New("consume: Options.Clusters needs at least the primary cluster")
	case len(o.Clusters) > 255:
		return errors.New("consume: at most 255 clusters")
	}
	for i, c := range o.Clusters {
		if c.Client == nil {
			return fmt.Errorf("consume: Options.Clusters[%d] has no client", i)
		}
		if c.Name == "" {
			o.Clusters[i].Name = fmt.Sprintf("cluster-%d", i)
		}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Node == "" {
		o.Node = "sidecar"
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "psc:"
	}
	if o.RegistryKeyPrefix == "" {
		o.RegistryKeyPrefix = o.KeyPrefix
	}
	o.Defaults = o.Defaults.withZeroesFilled()
	defDur(&o.DedupWindow, 10*time.Minute)
	def(&o.DefaultReceive, 100)
	def(&o.MaxReceive, 1000)
	defDur(&o.MaxWait, 30*time.Second)
	def(&o.MaxAckIDs, 1000)
	defDur(&o.MaxRedeliverAfter, time.Hour)
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	def(&o.ReceiverQueueSize, 100)
	def(&o.ConsumersPerCluster, 1)
	o.ConsumersPerCluster = min(o.ConsumersPerCluster, 8)
	def(&o.MaxReady, 500)
	def(&o.MaxHeld, 5000)
	def(&o.MaxSubscriptions, 1000)
	defDur(&o.ActiveWindow, 5*time.Second)
	defDur(&o.IdleTimeout, 30*time.Second)
	defDur(&o.ConfigRefresh, time.Second)
	defDur(&o.StatsInterval, 2*time.Second)
	def(&o.MaxStatsTags, 10000)
	def(&o.MaxTagLabels, 100)
	def(&o.TagBacklogScanMessages, 10000)
	def(&o.TagBacklogScanEntries, 1000)
	defDur(&o.TagBacklogScanTime, 3*time.Second)
	defDur(&o.TagBacklogCache, 5*time.Second)
	defDur(&o.rateSlot, 10*time.Second)
	if o.TagBacklogInterval == 0 {
		o.TagBacklogInterval = time.Minute
	}
	defDur(&o.RedisTimeout, 2*time.Second)
	defDur(&o.NackRedeliveryDelay, 30*time.Millisecond)
	defDur(&o.DeadLetterTimeout, deadLetterTimeoutDefault)
	defDur(&o.DeadLetterLease, 30*time.Second)
	defDur(&o.SubscribeTimeout, 10*time.Second)
	o.DefaultReceive = min(o.DefaultReceive, o.MaxReceive)
	return nil
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
	node     uint64 // this process's replica id in ackIds, random

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
	s.metrics = NewMetrics(metrics.OrDiscard(opts.Registerer), opts.MaxTagLabels)
	var b [8]byte
	_, _ = rand.Read(b[:])
	s.node = binary.BigEndian.Uint64(b[:])
	s.registry = NewRegistry(s.rdb, opts.RegistryKeyPrefix, opts.RedisTimeout)
	s.cache = newConfigCache(s.registry, opts.ConfigRefresh, s.clock.Now)
	s.states = &states{rdb: s.rdb, prefix: opts.KeyPrefix, timeout: opts.RedisTimeout, dedup: opts.DedupWindow}
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
	lctx, cancel := context.WithTimeout(ctx, s.opts.RedisTimeout)
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
	if s.opts.TagBacklogInterval > 0 {
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
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, notFound(ref)
	case err != nil:
		s.metrics.addStoreError()
		return nil, storeError(err)
	}
	return cfg, nil
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// --- registrations ---

// PutSubscription registers or replaces a subscription. A new one also gets
// its Pulsar subscription created on every cluster (the primary at the
// spec's initial position, the disaster-recovery cluster at the earliest
// message), so nothing produced after the PUT is missed. It reports
// whether the subscription is new.
func (s *Service) PutSubscription(ctx context.Context, ref SubscriptionRef, spec SubscriptionSpec, caller Caller) (*Subscription, bool, error) {
	if s.isClosed() {
		return nil, false, closedError()
	}
	sub, err := spec.Resolve(ref, s.opts.Defaults)
	if err != nil {
		return nil, false, err
	}
	sub.UpdatedAt = s.clock.Now().UTC()
	sub.UpdatedBy = caller.App
	old, err := s.registry.Get(ctx, ref)
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.metrics.addStoreError()
		return nil, false, storeError(err)
	}
	if old == nil {
		if err := s.createPulsarSubscriptions(sub); err != nil {
			return nil, false, err
		}
	}
	created, err := s.registry.Put(ctx, sub)
	if err != nil {
		s.metrics.addStoreError()
		return nil, false, storeError(err)
	}
	s.cache.set(ref.Path(), sub, s.clock.Now())
	s.refreshEngine(sub)
	return sub, created, nil
}

// createPulsarSubscriptions subscribes and closes a consumer on each
// cluster. Only the primary must succeed: a disaster-recovery cluster that
// is down gets its subscription when the engine first consumes.
func (s *Service) createPulsarSubscriptions(sub *Subscription) error {
	for i, c := range s.opts.Clusters {
		opts := s.consumerOptions(sub, i)
		opts.ReceiverQueueSize = 1
		done := make(chan error, 1)
		go func() {
			cons, err := c.Client.Subscribe(opts)
			if err == nil {
				cons.Close()
			}
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(s.opts.SubscribeTimeout):
			err = errors.New("timed out")
			s.goFunc(func() { // the client gives up at its operation timeout
				if err := <-done; err != nil {
					s.log.Debug("late subscribe failed", "err", err)
				}
			})
		}
		if err == nil {
			continue
		}
		if i == 0 {
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeBrokerUnavailable,
				Message: "the broker did not create the subscription; nothing was registered: retry", Err: err}
		}
		s.log.Warn("subscription not created on a secondary cluster; the engine will retry", "cluster", c.Name, "subscription", sub.Ref().Path(), "err", err)
	}
	return nil
}

// GetSubscription returns a registration (read from Redis, not the cache).
func (s *Service) GetSubscription(ctx context.Context, ref SubscriptionRef) (*Subscription, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	sub, err := s.registry.Get(ctx, ref)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, notFound(ref)
	case err != nil:
		s.metrics.addStoreError()
		return nil, storeError(err)
	}
	return sub, nil
}

// DeleteSubscription removes a registration and stops consuming it here;
// other replicas stop within Options.ConfigRefresh of their next request,
// or when idle. The Pulsar subscription (its cursor and backlog) is kept,
// so registering it again resumes where it stopped; delete it with
// pulsar-admin to drop the backlog.
func (s *Service) DeleteSubscription(ctx context.Context, ref SubscriptionRef) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	err := s.registry.Delete(ctx, ref)
	switch {
	case errors.Is(err, ErrNotFound):
		return notFound(ref)
	case err != nil:
		s.metrics.addStoreError()
		return storeError(err)
	}
	s.cache.set(ref.Path(), nil, s.clock.Now())
	s.mu.Lock()
	e := s.engines[ref.Path()]
	delete(s.engines, ref.Path())
	s.mu.Unlock()
	if e != nil {
		e.close()
	}
	return nil
}

// ListSubscriptions returns a topic's registrations.
func (s *Service) ListSubscriptions(ctx context.Context, topic TopicRef) ([]*Subscription, error) {
	if err := topic.Validate(); err != nil {
		return nil, err
	}
	subs, err := s.registry.List(ctx, topic)
	if err != nil {
		s.metrics.addStoreError()
		return nil, storeError(err)
	}
	return subs, nil
}

// --- engines ---

func (s *Service) consumerOptions(sub *Subscription, cluster int) pulsar.ConsumerOptions {
	typ := pulsar.Shared
	if sub.Type == TypeKeyShared {
		typ = pulsar.KeyShared
	}
	pos := pulsar.SubscriptionPositionLatest
	if sub.InitialPosition == PositionEarliest || cluster > 0 {
		pos = pulsar.SubscriptionPositionEarliest
	}
	return pulsar.ConsumerOptions{
		Topic:                          sub.Ref().TopicName(),
		SubscriptionName:               sub.Subscription,
		Type:                           typ,
		SubscriptionInitialPosition:    pos,
		Name:                           consumerName(s.opts.Node),
		ReceiverQueueSize:              s.opts.ReceiverQueueSize,
		EnableBatchIndexAcknowledgment: true,
		NackRedeliveryDelay:            s.opts.NackRedeliveryDelay,
		AckGroupingOptions:             &pulsar.AckGroupingOptions{MaxSize: 1000, MaxTime: 20 * time.Millisecond},
	}
}

// leaseKeep is how long past a lease's start its delivery state must stay
// visible (on Redis's clock): two leases and a minute, so the delivery
// count survives until the next delivery. Acknowledged and dead-lettered
// states stay for the dedup window; a nack adds its delay.
func (s *Service) leaseKeep(ackTimeout time.Duration) time.Duration {
	return 2*ackTimeout + time.Minute
}

func (s *Service) existingEngine(path string) *engine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.engines[path]
}

// engineFor returns the subscription's engine, creating it (and closing
// the least recently used one beyond MaxSubscriptions) or replacing it
// when the registration changed type.
func (s *Service) engineFor(cfg *Subscription) (*engine, error) {
	path := cfg.Ref().Path()
	var stale, evicted *engine
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, closedError()
	}
	e := s.engines[path]
	if e != nil {
		cur := e.cfg.Load()
		switch {
		case cur.Type != cfg.Type:
			stale, e = e, nil
			delete(s.engines, path)
		case cfg.Version > cur.Version || cfg.Version == cur.Version && cfg.TagFilter != cur.TagFilter:
			e.cfg.Store(cfg)
		}
	}
	if e == nil {
		if len(s.engines) >= s.opts.MaxSubscriptions {
			var lru *engine
			var lruAt time.Time
			for _, c := range s.engines {
				if at := c.idleSince(); lru == nil || at.Before(lruAt) {
					lru, lruAt = c, at
				}
			}
			if lru != nil {
				delete(s.engines, lru.path)
				evicted = lru
			}
		}
		e = newEngine(s, cfg)
		s.engines[path] = e
		e.start()
		s.metrics.setEngines(len(s.engines))
	}
	s.mu.Unlock()
	if stale != nil {
		stale.close()
	}
	if evicted != nil {
		evicted.close()
	}
	return e, nil
}

// refreshEngine gives a running engine a new registration.
func (s *Service) refreshEngine(sub *Subscription) {
	s.mu.Lock()
	e := s.engines[sub.Ref().Path()]
	if e != nil && e.cfg.Load().Type != sub.Type {
		delete(s.engines, sub.Ref().Path())
	} else {
		if e != nil {
			e.cfg.Store(sub)
		}
		e = nil
	}
	s.mu.Unlock()
	if e != nil {
		e.close()
	}
}

// housekeeping flushes stats and closes idle engines.
func (s *Service) housekeeping() {
	tick := time.NewTicker(max(min(s.opts.StatsInterval, s.opts.IdleTimeout/4, s.opts.ActiveWindow/2), 50*time.Millisecond))
	defer tick.Stop()
	lastFlush := time.Now()
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		now := time.Now()
		var idle, all []*engine
		s.mu.Lock()
		for path, e := range s.engines {
			if now.Sub(e.idleSince()) >= s.opts.IdleTimeout {
				idle = append(idle, e)
				delete(s.engines, path)
			} else {
				all = append(all, e)
			}
		}
		s.metrics.setEngines(len(s.engines))
		s.mu.Unlock()
		for _, e := range idle {
			s.log.Debug("closing idle subscription", "subscription", e.path)
			e.close()
		}
		for _, e := range all {
			e.handBackIfIdle()
		}
		if time.Since(lastFlush) >= s.opts.StatsInterval {
			lastFlush = time.Now()
			for _, e := range all {
				s.flushStats(context.Background(), e)
				s.reportHeld(context.Background(), e)
			}
		}
	}
}
