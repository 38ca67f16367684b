package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Options configure a Service. Redis, Clusters and Secret are required;
// zero values take the defaults noted. The wiring (what the service talks
// to) is at the top; the tuning is grouped by concern: State (Redis keys,
// timeouts, dedupe), Limits (what one request may ask), Consumers (the
// Pulsar consumers and what a replica holds), Stats, TagBacklog and
// DeadLetter.
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

	Defaults Defaults // ackTimeout 30s, maxDeliveries 16

	State      StateOptions
	Limits     LimitOptions
	Consumers  ConsumerOptions
	Stats      StatsOptions
	TagBacklog TagBacklogOptions
	DeadLetter DeadLetterOptions
}

// StateOptions are about the delivery state and the registry in Redis.
type StateOptions struct {
	KeyPrefix string // Redis key prefix; "psc:"
	// RegistryKeyPrefix is the prefix of the subscription registry's keys
	// (registry.go), KeyPrefix when empty. Its scripts write a
	// subscription's hash and the two index sets together, so on Redis
	// Cluster it must carry a hash tag ("psc:{registry}:"): the whole
	// registry then lives in one slot (docs/adr/090-redis-topologies.md).
	RegistryKeyPrefix string
	RedisTimeout      time.Duration // each Redis round trip; 2s
	// DedupWindow is how long a message's delivery state (and so the memory
	// of its uid) lives after its last change: copies of a uid within it are
	// dropped, and ackIds expire after it. 10m.
	DedupWindow time.Duration
	// ConfigRefresh is how stale a replica's copy of a registration may
	// be (another replica's PUT or DELETE is seen within it). 1s.
	ConfigRefresh time.Duration
}

// LimitOptions bound what one request may ask.
type LimitOptions struct {
	DefaultReceive    int           // messages per receive when max is not given; 100
	MaxReceive        int           // largest max a receive may ask for; 1000
	MaxWait           time.Duration // longest waitMs; 30s
	MaxAckIDs         int           // ackIds per ack or nack; 1000
	MaxRedeliverAfter time.Duration // longest nack delay; 1h
	MaxBodyBytes      int64         // request bodies; 1 MiB
}

// ConsumerOptions shape the Pulsar consumers and what a replica holds.
type ConsumerOptions struct {
	ReceiverQueueSize int // the Pulsar consumers' receiver queue; 100
	PerCluster        int // Pulsar consumers per subscription per cluster on this replica; 1, at most 8
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
	// NackRedeliveryDelay is the client's delay before a message handed
	// back to the broker is redelivered; 30ms.
	NackRedeliveryDelay time.Duration
	// SubscribeTimeout bounds creating the Pulsar subscription when a
	// subscription is registered; 10s.
	SubscribeTimeout time.Duration
}

// StatsOptions are about the per-subscription counts.
type StatsOptions struct {
	// Interval is how often counts go to Redis and Prometheus. 2s.
	Interval time.Duration
	// MaxTags bounds distinct tags counted per subscription and replica;
	// the rest count as "_other". 10000. MaxTagLabels does the same for
	// Prometheus labels; 100.
	MaxTags      int
	MaxTagLabels int

	rateSlot time.Duration // stats rate slot; 10s (tests shorten it)
}

// TagBacklogOptions bound the per-tag backlog scans (ADR 060).
type TagBacklogOptions struct {
	// ScanMessages, ScanEntries and ScanTime bound one scan (10000
	// messages, 1000 entries, 3s); past them the answer is a sample (exact
	// false). Cache is how long an answer is reused (5s). Interval is how
	// often each registered subscription is scanned for Prometheus, by one
	// replica at a time (1m); negative: never.
	ScanMessages int
	ScanEntries  int
	ScanTime     time.Duration
	Cache        time.Duration
	Interval     time.Duration
}

// DeadLetterOptions are about dead-lettering a message.
type DeadLetterOptions struct {
	// Timeout bounds one dead-letter send; 10s. Lease is how long a
	// replica owns a message it is dead-lettering before another may try;
	// 30s.
	Timeout time.Duration
	Lease   time.Duration
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
	if o.State.KeyPrefix == "" {
		o.State.KeyPrefix = "psc:"
	}
	if o.State.RegistryKeyPrefix == "" {
		o.State.RegistryKeyPrefix = o.State.KeyPrefix
	}
	o.Defaults = o.Defaults.withZeroesFilled()
	defDur(&o.State.DedupWindow, 10*time.Minute)
	def(&o.Limits.DefaultReceive, 100)
	def(&o.Limits.MaxReceive, 1000)
	defDur(&o.Limits.MaxWait, 30*time.Second)
	def(&o.Limits.MaxAckIDs, 1000)
	defDur(&o.Limits.MaxRedeliverAfter, time.Hour)
	if o.Limits.MaxBodyBytes <= 0 {
		o.Limits.MaxBodyBytes = 1 << 20
	}
	def(&o.Consumers.ReceiverQueueSize, 100)
	def(&o.Consumers.PerCluster, 1)
	o.Consumers.PerCluster = min(o.Consumers.PerCluster, 8)
	def(&o.Consumers.MaxReady, 500)
	def(&o.Consumers.MaxHeld, 5000)
	def(&o.Consumers.MaxSubscriptions, 1000)
	defDur(&o.Consumers.ActiveWindow, 5*time.Second)
	defDur(&o.Consumers.IdleTimeout, 30*time.Second)
	defDur(&o.State.ConfigRefresh, time.Second)
	defDur(&o.Stats.Interval, 2*time.Second)
	def(&o.Stats.MaxTags, 10000)
	def(&o.Stats.MaxTagLabels, 100)
	def(&o.TagBacklog.ScanMessages, 10000)
	def(&o.TagBacklog.ScanEntries, 1000)
	defDur(&o.TagBacklog.ScanTime, 3*time.Second)
	defDur(&o.TagBacklog.Cache, 5*time.Second)
	defDur(&o.Stats.rateSlot, 10*time.Second)
	if o.TagBacklog.Interval == 0 {
		o.TagBacklog.Interval = time.Minute
	}
	defDur(&o.State.RedisTimeout, 2*time.Second)
	defDur(&o.Consumers.NackRedeliveryDelay, 30*time.Millisecond)
	defDur(&o.DeadLetter.Timeout, deadLetterTimeoutDefault)
	defDur(&o.DeadLetter.Lease, 30*time.Second)
	defDur(&o.Consumers.SubscribeTimeout, 10*time.Second)
	o.Limits.DefaultReceive = min(o.Limits.DefaultReceive, o.Limits.MaxReceive)
	return nil
}
