// Package config holds the sidecar's configuration: the Config struct, its
// defaults, loading from a YAML file, environment variables (PSC_*) and
// command-line flags, and validation.
//
// Precedence, lowest first: defaults, the YAML file (--config or
// PSC_CONFIG), environment variables, flags. Every scalar key has all three
// spellings, derived from its YAML path: "producer.idleTimeout" is the YAML
// key producer: {idleTimeout: ...}, the flag --producer-idle-timeout and the
// variable PSC_PRODUCER_IDLE_TIMEOUT. Apps (a list of structs) are YAML only.
// Settings lists every key with its default and help text;
// docs/configuration.md is checked against it by a test.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// ErrInvalid wraps every validation error.
var ErrInvalid = errors.New("config: invalid")

// Config is the whole configuration of one sidecar process.
type Config struct {
	// Listen is the HTTP data-plane address.
	Listen string `yaml:"listen"`
	// DataDir holds local state (the embedded broker's data; later the
	// spool and the embedded trace store).
	DataDir string `yaml:"dataDir"`
	// Node names this sidecar instance in trace events; the hostname by default.
	Node string `yaml:"node"`
	// ShutdownTimeout caps the whole graceful shutdown.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`

	Log         Log         `yaml:"log"`
	Pulsar      Pulsar      `yaml:"pulsar"`
	Embedded    Embedded    `yaml:"embedded"`
	Redis       Redis       `yaml:"redis"`
	HTTP        HTTP        `yaml:"http"`
	Producer    Producer    `yaml:"producer"`
	Limits      Limits      `yaml:"limits"`
	Idempotency Idempotency `yaml:"idempotency"`
	Trace       Trace       `yaml:"trace"`
	Delay       Delay       `yaml:"delay"`
	Durability  Durability  `yaml:"durability"`
	Consume     Consume     `yaml:"consume"`
	// Management is the optional separate listener for /metrics, /healthz,
	// /readyz and pprof (connections.go).
	Management Management `yaml:"management"`
	// Secrets says how often secrets read from files are re-read.
	Secrets Secrets `yaml:"secrets"`
	// Console configures the console's extras (issue 15).
	Console Console `yaml:"console"`

	// Apps are the producer groups allowed to call the data plane. With
	// none, a loopback listener serves everyone as app "dev" and any other
	// listener refuses to start.
	Apps []App `yaml:"apps"`
}

// Console configures the console beyond its API.
type Console struct {
	// PrometheusURL is the Prometheus server (http://host:9090) that
	// scrapes this sidecar with docs/alerts/pulsar-sidecar.rules.yml
	// loaded: the health page shows its firing and pending alerts. Empty:
	// the page says how to set it.
	PrometheusURL string `yaml:"prometheusURL"`
}

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
	// Access logs one line per HTTP request at info level.
	Access bool `yaml:"access"`
}

// Pulsar configures the primary cluster. An empty URL selects the embedded mode.
type Pulsar struct {
	URL string `yaml:"url"`
	// AdminURL is the cluster's admin REST (http://host:8080), used by the
	// console for message content, cursors and backlog.
	AdminURL  string `yaml:"adminURL"`
	Cluster   string `yaml:"cluster"`
	AuthToken string `yaml:"authToken"`
	// DRURL is the disaster-recovery cluster's service URL: while the
	// primary is unhealthy the sidecar produces there (status failover).
	DRURL string `yaml:"drURL"`
	// DRCluster names it in results and trace events ("dr").
	DRCluster string `yaml:"drCluster"`
	// DRAuthToken is the JWT for the disaster-recovery cluster.
	DRAuthToken       string        `yaml:"drAuthToken"`
	OperationTimeout  time.Duration `yaml:"operationTimeout"`
	ConnectionTimeout time.Duration `yaml:"connectionTimeout"`

	// AuthTokenFile and DRAuthTokenFile read the JWTs from mounted files,
	// re-read every secrets.reloadInterval and on SIGHUP.
	AuthTokenFile   string `yaml:"authTokenFile"`
	DRAuthTokenFile string `yaml:"drAuthTokenFile"`
	// TLS applies to pulsar+ssl:// service URLs and an https:// admin URL;
	// DRTLS to the disaster-recovery cluster.
	TLS   PulsarTLS `yaml:"tls"`
	DRTLS PulsarTLS `yaml:"drTLS"`
	// OAuth2 and DROauth2 authenticate with OAuth2 client credentials
	// instead of a token.
	OAuth2   OAuth2 `yaml:"oauth2"`
	DROauth2 OAuth2 `yaml:"drOauth2"`
}

// Embedded configures the in-process broker and Redis of the embedded mode.
type Embedded struct {
	PulsarListen      string `yaml:"pulsarListen"`
	PulsarAdminListen string `yaml:"pulsarAdminListen"`
	Persist           bool   `yaml:"persist"`
	// RedisSnapshotInterval is how often the embedded Redis's keyspace is
	// written to <dataDir>/redis (with Persist): what a crash can lose.
	RedisSnapshotInterval time.Duration `yaml:"redisSnapshotInterval"`
}

// Redis configures the Redis that holds idempotency keys, the delay index
// and the consume state. With neither Addr nor Addrs an in-process Redis
// starts (kept in <dataDir>/redis with embedded.persist). The topology
// follows go-redis's universal options (redis.go): MasterName selects
// Sentinel (Addrs are the sentinels), more than one address without it a
// Cluster (Addrs are seeds), one address a single server.
type Redis struct {
	Addr string `yaml:"addr"`
	// Addrs is a comma-separated list of host:port; Addr is the one-server
	// spelling and may not be set with it.
	Addrs      string `yaml:"addrs"`
	MasterName string `yaml:"masterName"`
	Username   string `yaml:"username"`
	Password   string `yaml:"password"`
	// PasswordFile holds the password (a mounted secret), read again for
	// every new connection; it may not be set with Password.
	PasswordFile string `yaml:"passwordFile"`
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// (their own ACL, apart from the data nodes').
	SentinelUsername     string        `yaml:"sentinelUsername"`
	SentinelPassword     string        `yaml:"sentinelPassword"`
	SentinelPasswordFile string        `yaml:"sentinelPasswordFile"`
	DB                   int           `yaml:"db"`
	Timeout              time.Duration `yaml:"timeout"`
	PoolSize             int           `yaml:"poolSize"`
	TLS                  RedisTLS      `yaml:"tls"`
	// WaitReplicas, when above zero, makes a wheel schedule wait for this
	// many replicas to confirm it (Redis WAIT) before the produce is
	// answered; WaitTimeout caps the wait (then 503). Single server or
	// Sentinel only.
	WaitReplicas int           `yaml:"waitReplicas"`
	WaitTimeout  time.Duration `yaml:"waitTimeout"`
}

// HTTP configures the data-plane server.
type HTTP struct {
	RequestTimeout    time.Duration `yaml:"requestTimeout"`
	ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"`
	ReadTimeout       time.Duration `yaml:"readTimeout"`
	IdleTimeout       time.Duration `yaml:"idleTimeout"`
	// TLSCertFile and TLSKeyFile make the data plane serve HTTPS; both
	// files are re-read when they change (checked every
	// secrets.reloadInterval and on SIGHUP).
	TLSCertFile string `yaml:"tlsCertFile"`
	TLSKeyFile  string `yaml:"tlsKeyFile"`
}

// Producer configures the producer pool.
type Producer struct {
	MaxProducers            int           `yaml:"maxProducers"`
	IdleTimeout             time.Duration `yaml:"idleTimeout"`
	BatchingMaxPublishDelay time.Duration `yaml:"batchingMaxPublishDelay"`
	BatchingMaxMessages     int           `yaml:"batchingMaxMessages"`
	BatchingMaxBytes        ByteSize      `yaml:"batchingMaxBytes"`
	MaxPendingMessages      int           `yaml:"maxPendingMessages"`
}

// Limits bound what one request may carry.
type Limits struct {
	MaxPayloadBytes        ByteSize      `yaml:"maxPayloadBytes"`
	MaxRequestBytes        ByteSize      `yaml:"maxRequestBytes"`
	MaxMessagesPerRequest  int           `yaml:"maxMessagesPerRequest"`
	MaxKeyBytes            int           `yaml:"maxKeyBytes"`
	MaxTags                int           `yaml:"maxTags"`
	MaxProperties          int           `yaml:"maxProperties"`
	MaxPropertyKeyBytes    int           `yaml:"maxPropertyKeyBytes"`
	MaxPropertyValueBytes  int           `yaml:"maxPropertyValueBytes"`
	MaxIdempotencyKeyBytes int           `yaml:"maxIdempotencyKeyBytes"`
	MaxDelay               time.Duration `yaml:"maxDelay"`
}

// Idempotency configures the idempotency-key store.
type Idempotency struct {
	TTL          time.Duration `yaml:"ttl"`
	Lease        time.Duration `yaml:"lease"`
	PollInterval time.Duration `yaml:"pollInterval"`
}

// Trace configures the lifecycle trace: where events are stored (and
// queried by the console) and whether they are also logged.
type Trace struct {
	LogLevel string `yaml:"logLevel"` // level of the per-event log lines, or "off"
	// Store keeps events for the console: "sqlite" (a file under dataDir,
	// the default), "elasticsearch" (trace.elasticsearch.addresses), or
	// "off" (log lines only; no console).
	Store string `yaml:"store"`
	// SQLitePath is the SQLite file; <dataDir>/trace/events.db when empty.
	SQLitePath string `yaml:"sqlitePath"`
	// Retention drops events older than this (checked hourly).
	Retention time.Duration `yaml:"retention"`
	// QueueSize is the bounded queue between the data plane and the writer.
	QueueSize int `yaml:"queueSize"`
	// IngestBudget is the share of one CPU the trace store may use while
	// the data plane is busy; the rest waits in the outbox until produce is
	// quiet (ADR 020). 0 turns deferral off.
	IngestBudget float64 `yaml:"ingestBudget"`
	// IngestBusyCPU is the share of the process's CPUs (GOMAXPROCS) that
	// its work outside the trace store, plus what the store needs to keep
	// up, must reach before IngestBudget applies: below it there are CPUs
	// to spare and the store is written at once. Negative: the budget
	// applies whatever the CPU use.
	IngestBusyCPU float64 `yaml:"ingestBusyCPU"`
	// DeferMaxBytes and DeferMaxAge end deferral: past either, the store is
	// written at full speed whatever the load. DeferMaxBytes 0 is derived:
	// min(256MiB, OutboxMaxBytes/4), as the pipeline does.
	DeferMaxBytes ByteSize      `yaml:"deferMaxBytes"`
	DeferMaxAge   time.Duration `yaml:"deferMaxAge"`
	// OutboxMaxBytes caps <dataDir>/trace/outbox; beyond it events are lost
	// and counted (psc_trace_events_spill_failed_total).
	OutboxMaxBytes ByteSize `yaml:"outboxMaxBytes"`
	// ReplayMinBackoff and ReplayMaxBackoff bound the wait between replay
	// attempts while the store refuses writes.
	ReplayMinBackoff time.Duration      `yaml:"replayMinBackoff"`
	ReplayMaxBackoff time.Duration      `yaml:"replayMaxBackoff"`
	Elasticsearch    TraceElasticsearch `yaml:"elasticsearch"`
}

// TraceElasticsearch configures the Elasticsearch trace store.
type TraceElasticsearch struct {
	Addresses   string `yaml:"addresses"` // comma-separated, e.g. http://es-1:9200,http://es-2:9200
	Username    string `yaml:"username"`
	Password    string `yaml:"password"`
	APIKey      string `yaml:"apiKey"`
	IndexPrefix string `yaml:"indexPrefix"`
	// PasswordFile and APIKeyFile read the secrets from mounted files (at start).
	PasswordFile string `yaml:"passwordFile"`
	APIKeyFile   string `yaml:"apiKeyFile"`
	// CAFile trusts a private CA; CertificateFingerprint pins the server's
	// (or its CA's) certificate by the hex SHA-256 Elasticsearch prints on
	// first start.
	CAFile                 string `yaml:"caFile"`
	CertificateFingerprint string `yaml:"certificateFingerprint"`
	// BreakerThreshold failed bulk requests in a row open the circuit
	// breaker; while open (BreakerCooldown) writes fail fast and events
	// wait in the outbox.
	BreakerThreshold int           `yaml:"breakerThreshold"`
	BreakerCooldown  time.Duration `yaml:"breakerCooldown"`
}

// Consume configures the HTTP consume API.
type Consume struct {
	// Secret signs ackIds; every replica behind one load balancer needs the
	// same one (at least 16 bytes). Empty: a random key per process.
	Secret string `yaml:"secret"`
	// SecretFile reads Secret from a mounted file (at start).
	SecretFile string `yaml:"secretFile"`
	// BacklogScanMessages, BacklogScanEntries and BacklogScanTime bound one
	// per-tag backlog scan of a subscription; past any of them the answer
	// is a sample (exact false) scaled to the broker's backlog.
	BacklogScanMessages int           `yaml:"backlogScanMessages"`
	BacklogScanEntries  int           `yaml:"backlogScanEntries"`
	BacklogScanTime     time.Duration `yaml:"backlogScanTime"`
	// BacklogInterval is how often each registered subscription is scanned
	// for the Prometheus per-tag backlog gauges, by one replica at a time;
	// 0 turns the periodic scan off (the HTTP and console answers still scan).
	BacklogInterval time.Duration `yaml:"backlogInterval"`
}

// Durability configures retry, failover and the local spool (ADR 050).
type Durability struct {
	// AttemptTimeout bounds one send to one cluster; a dead cluster costs
	// this much before the next cluster (or the spool) is tried.
	AttemptTimeout time.Duration `yaml:"attemptTimeout"`
	// SpoolMaxBytes caps the local spool under <dataDir>/spool; beyond it
	// requests that no cluster takes fail with 503 SPOOL_FULL.
	SpoolMaxBytes ByteSize `yaml:"spoolMaxBytes"`
}

// Delay configures delayed delivery (deliverAfter, deliverAt, delayLevel).
type Delay struct {
	// Mode is how deliverAfter and deliverAt are served: "wheel" (the timing
	// wheel over Redis: every subscription type, cancel, list, reschedule)
	// or "native" (Pulsar's deliverAt: Shared and Key_Shared only).
	Mode string `yaml:"mode"`
	// Levels are the delay levels (space or comma separated), each a
	// Pulsar topic; "off" disables delayLevel.
	Levels string `yaml:"levels"`
}

// App is one producer group.
type App struct {
	Name string `yaml:"name"`
	// TokenSHA256 is the hex SHA-256 of the app's bearer token (see
	// `pulsar-sidecar hash-token`). The token itself is never stored.
	TokenSHA256 string `yaml:"tokenSHA256"`
	// Produce lists topic patterns: "tenant/ns/topic", "tenant/ns/*",
	// "tenant/*" or "*".
	Produce []string `yaml:"produce"`
	// Consume lists topic patterns the app may consume from over HTTP.
	Consume []string `yaml:"consume"`
	// Console lets the app use the console API.
	Console bool `yaml:"console"`
	// ConsoleRole is what the app may do in the console: viewer (read,
	// the default), operator (also cancel delayed messages and resend
	// dead letters) or admin. Setting it implies console: true.
	ConsoleRole string    `yaml:"consoleRole"`
	RateLimit   RateLimit `yaml:"rateLimit"`
}

// RateLimit is a token bucket in messages. Zero MessagesPerSecond means no limit.
type RateLimit struct {
	MessagesPerSecond float64 `yaml:"messagesPerSecond"`
	Burst             int     `yaml:"burst"`
}

// Default returns the configuration used when nothing is set: the embedded
// mode on 127.0.0.1:8088.
func Default() Config {
	node, _ := os.Hostname()
	if node == "" {
		node = "sidecar"
	}
	return Config{
		Listen:          "127.0.0.1:8088",
		DataDir:         "./data",
		Node:            node,
		ShutdownTimeout: 20 * time.Second,
		Log:             Log{Level: "info", Format: "text", Access: true},
		Pulsar: Pulsar{
			OperationTimeout:  10 * time.Second,
			ConnectionTimeout: 5 * time.Second,
			TLS:               PulsarTLS{ValidateHostname: true},
			DRTLS:             PulsarTLS{ValidateHostname: true},
		},
		Embedded: Embedded{
			PulsarListen:          "127.0.0.1:0",
			PulsarAdminListen:     "127.0.0.1:0",
			Persist:               true,
			RedisSnapshotInterval: time.Second,
		},
		Redis: Redis{Timeout: 500 * time.Millisecond, PoolSize: 128, WaitTimeout: time.Second},
		HTTP: HTTP{
			RequestTimeout:    10 * time.Second,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       2 * time.Minute,
		},
		Producer: Producer{
			MaxProducers:            1000,
			IdleTimeout:             10 * time.Minute,
			BatchingMaxPublishDelay: 5 * time.Millisecond,
			BatchingMaxMessages:     1000,
			BatchingMaxBytes:        128 * KiB,
			MaxPendingMessages:      10000,
		},
		Limits: Limits{
			MaxPayloadBytes:        1 * MiB,
			MaxRequestBytes:        5 * MiB,
			MaxMessagesPerRequest:  100,
			MaxKeyBytes:            256,
			MaxTags:                16,
			MaxProperties:          32,
			MaxPropertyKeyBytes:    128,
			MaxPropertyValueBytes:  4096,
			MaxIdempotencyKeyBytes: 255,
			MaxDelay:               30 * 24 * time.Hour,
		},
		Idempotency: Idempotency{
			TTL:          24 * time.Hour,
			Lease:        3 * time.Second,
			PollInterval: 20 * time.Millisecond,
		},
		Durability: Durability{AttemptTimeout: time.Second, SpoolMaxBytes: 1 * GiB},
		Consume: Consume{
			BacklogScanMessages: 10000,
			BacklogScanEntries:  1000,
			BacklogScanTime:     3 * time.Second,
			BacklogInterval:     time.Minute,
		},
		Delay: Delay{Mode: "wheel", Levels: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"},
		Trace: Trace{
			LogLevel:         "debug",
			Store:            "sqlite",
			Retention:        7 * 24 * time.Hour,
			QueueSize:        16384,
			IngestBudget:     0.005,
			IngestBusyCPU:    0.7,
			DeferMaxAge:      5 * time.Minute,
			OutboxMaxBytes:   1 * GiB,
			ReplayMinBackoff: 500 * time.Millisecond,
			ReplayMaxBackoff: 30 * time.Second,
			Elasticsearch: TraceElasticsearch{IndexPrefix: "pulsar-sidecar",
				BreakerThreshold: 5, BreakerCooldown: 30 * time.Second},
		},
		// Kubernetes updates a mounted secret within about a minute.
		Secrets: Secrets{ReloadInterval: time.Minute},
	}
}

// Embedded reports whether the configuration selects the embedded broker.
func (c *Config) EmbeddedPulsar() bool { return c.Pulsar.URL == "" }

// EmbeddedRedis reports whether the configuration selects the in-process Redis.
func (c *Config) EmbeddedRedis() bool { return len(c.Redis.AddrList()) == 0 }

// ClusterName is the name reported in produce results and trace events.
func (c *Config) ClusterName() string {
	switch {
	case c.Pulsar.Cluster != "":
		return c.Pulsar.Cluster
	case c.EmbeddedPulsar():
		return "embedded"
	default:
		return "primary"
	}
}

// Validate reports every problem at once, each wrapped in ErrInvalid.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: %v", c.Listen, err)
	} else if len(c.Apps) == 0 && !IsLoopback(c.Listen) {
		bad("listen %q is not a loopback address and no apps are configured: "+
			"anyone who can reach it could produce. Configure apps (YAML key apps, see README \"Apps and tokens\") "+
			"or listen on 127.0.0.1", c.Listen)
	}
	if c.DataDir == "" {
		bad("dataDir is empty")
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format %q: want text or json", c.Log.Format)
	}
	switch strings.ToLower(c.Trace.LogLevel) {
	case "debug", "info", "warn", "error", "off":
	default:
		bad("trace.logLevel %q: want debug, info, warn, error or off", c.Trace.LogLevel)
	}
	if u := c.Pulsar.URL; u != "" && !strings.HasPrefix(u, "pulsar://") && !strings.HasPrefix(u, "pulsar+ssl://") {
		bad("pulsar.url %q: want pulsar://host:port or pulsar+ssl://host:port", u)
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			bad("%s must be positive, got %s", name, d)
		}
	}
	positive("shutdownTimeout", c.ShutdownTimeout)
	positive("embedded.redisSnapshotInterval", c.Embedded.RedisSnapshotInterval)
	positive("durability.attemptTimeout", c.Durability.AttemptTimeout)
	if n := len(c.Consume.Secret); n > 0 && n < 16 {
		bad("consume.secret must be at least 16 bytes, got %d", n)
	}
	if c.Consume.BacklogScanMessages < 1 {
		bad("consume.backlogScanMessages must be at least 1, got %d", c.Consume.BacklogScanMessages)
	}
	if c.Consume.BacklogScanEntries < 1 {
		bad("consume.backlogScanEntries must be at least 1, got %d", c.Consume.BacklogScanEntries)
	}
	positive("consume.backlogScanTime", c.Consume.BacklogScanTime)
	if c.Consume.BacklogInterval < 0 {
		bad("consume.backlogInterval must be 0 (off) or positive, got %s", c.Consume.BacklogInterval)
	}
	if c.Durability.SpoolMaxBytes < 1*MiB {
		bad("durability.spoolMaxBytes must be at least 1MiB, got %s", c.Durability.SpoolMaxBytes)
	}
	if u := c.Pulsar.DRURL; u != "" && !strings.HasPrefix(u, "pulsar://") && !strings.HasPrefix(u, "pulsar+ssl://") {
		bad("pulsar.drURL %q: want pulsar://host:port or pulsar+ssl://host:port", u)
	}
	switch c.Delay.Mode {
	case "wheel", "native":
	default:
		bad("delay.mode %q: want wheel or native", c.Delay.Mode)
	}
	switch c.Trace.Store {
	case "sqlite", "off":
	case "elasticsearch":
		if strings.TrimSpace(c.Trace.Elasticsearch.Addresses) == "" {
			bad("trace.store is elasticsearch but trace.elasticsearch.addresses is empty")
		}
	default:
		bad("trace.store %q: want sqlite, elasticsearch or off", c.Trace.Store)
	}
	positive("trace.retention", c.Trace.Retention)
	if c.Trace.QueueSize < 1 {
		bad("trace.queueSize must be at least 1, got %d", c.Trace.QueueSize)
	}
	if c.Trace.IngestBudget < 0 || c.Trace.IngestBudget > 1 {
		bad("trace.ingestBudget must be between 0 (no deferral) and 1 (a whole CPU), got %g", c.Trace.IngestBudget)
	}
	if c.Trace.IngestBusyCPU == 0 || c.Trace.IngestBusyCPU > 1 {
		bad("trace.ingestBusyCPU must be a share of the CPUs up to 1, or negative for any CPU use, got %g", c.Trace.IngestBusyCPU)
	}
	positive("trace.deferMaxAge", c.Trace.DeferMaxAge)
	if c.Trace.OutboxMaxBytes < 1*MiB {
		bad("trace.outboxMaxBytes must be at least 1MiB, got %s", c.Trace.OutboxMaxBytes)
	}
	if c.Trace.DeferMaxBytes < 0 || c.Trace.DeferMaxBytes >= c.Trace.OutboxMaxBytes {
		bad("trace.deferMaxBytes must be 0 (derived) or below trace.outboxMaxBytes (%s), got %s", c.Trace.OutboxMaxBytes, c.Trace.DeferMaxBytes)
	}
	positive("trace.replayMinBackoff", c.Trace.ReplayMinBackoff)
	if c.Trace.ReplayMaxBackoff < c.Trace.ReplayMinBackoff {
		bad("trace.replayMaxBackoff (%s) must be at least trace.replayMinBackoff (%s)", c.Trace.ReplayMaxBackoff, c.Trace.ReplayMinBackoff)
	}
	if c.Trace.Elasticsearch.BreakerThreshold < 1 {
		bad("trace.elasticsearch.breakerThreshold must be at least 1, got %d", c.Trace.Elasticsearch.BreakerThreshold)
	}
	positive("trace.elasticsearch.breakerCooldown", c.Trace.Elasticsearch.BreakerCooldown)
	positive("pulsar.operationTimeout", c.Pulsar.OperationTimeout)
	positive("pulsar.connectionTimeout", c.Pulsar.ConnectionTimeout)
	positive("redis.timeout", c.Redis.Timeout)
	positive("http.requestTimeout", c.HTTP.RequestTimeout)
	positive("http.readHeaderTimeout", c.HTTP.ReadHeaderTimeout)
	positive("http.readTimeout", c.HTTP.ReadTimeout)
	positive("http.idleTimeout", c.HTTP.IdleTimeout)
	positive("producer.idleTimeout", c.Producer.IdleTimeout)
	positive("producer.batchingMaxPublishDelay", c.Producer.BatchingMaxPublishDelay)
	positive("limits.maxDelay", c.Limits.MaxDelay)
	if u := c.Console.PrometheusURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.RawQuery != "" {
			bad("console.prometheusURL %q: want http(s)://host[:port][/path]", u)
		}
	}
	positive("idempotency.ttl", c.Idempotency.TTL)
	positive("idempotency.pollInterval", c.Idempotency.PollInterval)
	if c.Idempotency.Lease < 3*c.Idempotency.PollInterval || c.Idempotency.Lease < 100*time.Millisecond {
		bad("idempotency.lease (%s) must be at least 100ms and 3 x idempotency.pollInterval (%s): "+
			"it is renewed every third of itself while its owner waits for the broker", c.Idempotency.Lease, c.Idempotency.PollInterval)
	}
	if c.Idempotency.Lease > c.Idempotency.TTL {
		bad("idempotency.lease (%s) must not exceed idempotency.ttl (%s)", c.Idempotency.Lease, c.Idempotency.TTL)
	}
	atLeast := func(name string, v, min int) {
		if v < min {
			bad("%s must be at least %d, got %d", name, min, v)
		}
	}
	atLeast("redis.db", c.Redis.DB, 0)
	atLeast("redis.poolSize", c.Redis.PoolSize, 1)
	atLeast("producer.maxProducers", c.Producer.MaxProducers, 1)
	atLeast("producer.batchingMaxMessages", c.Producer.BatchingMaxMessages, 1)
	atLeast("producer.maxPendingMessages", c.Producer.MaxPendingMessages, 1)
	atLeast("limits.maxMessagesPerRequest", c.Limits.MaxMessagesPerRequest, 1)
	atLeast("limits.maxKeyBytes", c.Limits.MaxKeyBytes, 1)
	atLeast("limits.maxTags", c.Limits.MaxTags, 0)
	atLeast("limits.maxProperties", c.Limits.MaxProperties, 0)
	atLeast("limits.maxPropertyKeyBytes", c.Limits.MaxPropertyKeyBytes, 1)
	atLeast("limits.maxPropertyValueBytes", c.Limits.MaxPropertyValueBytes, 0)
	atLeast("limits.maxIdempotencyKeyBytes", c.Limits.MaxIdempotencyKeyBytes, 1)
	if c.Producer.BatchingMaxBytes < 1*KiB {
		bad("producer.batchingMaxBytes must be at least 1KiB, got %s", c.Producer.BatchingMaxBytes)
	}
	// Pulsar's default maximum message size is 5 MiB; a payload plus its
	// metadata must fit.
	if c.Limits.MaxPayloadBytes < 1 || c.Limits.MaxPayloadBytes > 5*MiB-64*KiB {
		bad("limits.maxPayloadBytes must be between 1 and 4.9375MiB (Pulsar's 5 MiB frame minus room for metadata), got %s", c.Limits.MaxPayloadBytes)
	}
	if c.Limits.MaxRequestBytes < c.Limits.MaxPayloadBytes {
		bad("limits.maxRequestBytes (%s) must be at least limits.maxPayloadBytes (%s)", c.Limits.MaxRequestBytes, c.Limits.MaxPayloadBytes)
	}
	errs = append(errs, c.Redis.validate()...)
	errs = append(errs, validateApps(c.Apps)...)
	errs = append(errs, c.validateConnections()...)
	return errors.Join(errs...)
}

// IsLoopback reports whether a listen address only accepts local
// connections: 127.0.0.0/8, ::1 or "localhost". An empty host (all
// interfaces) is not loopback.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
