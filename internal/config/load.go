package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment variable the sidecar reads.
const EnvPrefix = "PSC_"

// Names of the settings that are not Config keys.
const (
	configFlag = "config"
	configEnv  = EnvPrefix + "CONFIG"
)

// Setting describes one scalar key in its three spellings.
type Setting struct {
	Key     string // YAML path, e.g. "producer.idleTimeout"
	Flag    string // e.g. "producer-idle-timeout" (used as --producer-idle-timeout)
	Env     string // e.g. "PSC_PRODUCER_IDLE_TIMEOUT"
	Default string // the default value, formatted
	Help    string

	set    func(string) error
	get    func() string
	isBool bool
}

// Settings lists every scalar key with its default and help text, in
// documentation order.
func Settings() []Setting {
	c := Default()
	return bind(&c)
}

func bind(c *Config) []Setting {
	var out []Setting
	add := func(key, help string, ptr any) {
		s := Setting{Key: key, Flag: kebab(key), Env: EnvPrefix + strings.ToUpper(strings.ReplaceAll(kebab(key), "-", "_")), Help: help}
		switch p := ptr.(type) {
		case *string:
			s.get = func() string { return *p }
			s.set = func(v string) error { *p = v; return nil }
		case *int:
			s.get = func() string { return strconv.Itoa(*p) }
			s.set = func(v string) error {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("want an integer, got %q", v)
				}
				*p = n
				return nil
			}
		case *float64:
			s.get = func() string { return strconv.FormatFloat(*p, 'g', -1, 64) }
			s.set = func(v string) error {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return fmt.Errorf("want a number, got %q", v)
				}
				*p = f
				return nil
			}
		case *bool:
			s.isBool = true
			s.get = func() string { return strconv.FormatBool(*p) }
			s.set = func(v string) error {
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("want true or false, got %q", v)
				}
				*p = b
				return nil
			}
		case *time.Duration:
			s.get = func() string { return p.String() }
			s.set = func(v string) error {
				d, err := time.ParseDuration(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("want a Go duration such as 500ms, 10s or 24h, got %q", v)
				}
				*p = d
				return nil
			}
		case *ByteSize:
			s.get = func() string { return p.String() }
			s.set = func(v string) error {
				b, err := ParseByteSize(v)
				if err != nil {
					return err
				}
				*p = b
				return nil
			}
		default:
			panic(fmt.Sprintf("config: unsupported type %T for %s", ptr, key))
		}
		s.Default = s.get()
		out = append(out, s)
	}
	add("listen", "HTTP data-plane listen address; a non-loopback address requires apps", &c.Listen)
	add("dataDir", "directory for local state: the spool, the trace store and its outbox, the embedded broker's data", &c.DataDir)
	add("node", "name of this sidecar instance in trace events (default: the hostname)", &c.Node)
	add("shutdownTimeout", "cap on the whole graceful shutdown (drain HTTP, flush producers, close clients)", &c.ShutdownTimeout)
	add("log.level", "log level: debug, info, warn, error", &c.Log.Level)
	add("log.format", "log format: text or json", &c.Log.Format)
	add("log.access", "one info line per HTTP request (method, route, status, code, app, duration, request id)", &c.Log.Access)
	add("pulsar.url", "primary Pulsar service URL (pulsar://host:6650); empty runs the embedded broker", &c.Pulsar.URL)
	add("pulsar.adminURL", "primary cluster's admin REST URL (http://host:8080) for the console; the embedded broker's is used in embedded mode", &c.Pulsar.AdminURL)
	add("console.prometheusURL", "Prometheus server (http://host:9090) scraping this sidecar with the alert rules loaded; the console's health page shows its firing and pending alerts", &c.Console.PrometheusURL)
	add("pulsar.drURL", "disaster-recovery cluster's service URL; while the primary is unhealthy messages go there (status failover)", &c.Pulsar.DRURL)
	add("pulsar.drCluster", "name of the disaster-recovery cluster in results (default dr)", &c.Pulsar.DRCluster)
	add("pulsar.drAuthToken", "Pulsar JWT for the disaster-recovery cluster (prefer the environment variable)", &c.Pulsar.DRAuthToken)
	add("durability.attemptTimeout", "longest one send to one cluster may take before the next cluster or the spool is tried (at most half of http.requestTimeout)", &c.Durability.AttemptTimeout)
	add("durability.spoolMaxBytes", "cap of the local spool under <dataDir>/spool (503 SPOOL_FULL beyond it)", &c.Durability.SpoolMaxBytes)
	add("pulsar.cluster", "cluster name reported in results (default: primary, or embedded)", &c.Pulsar.Cluster)
	add("pulsar.authToken", "Pulsar JWT for the sidecar's own connection (prefer the environment variable)", &c.Pulsar.AuthToken)
	add("pulsar.operationTimeout", "timeout of Pulsar lookups and producer creation", &c.Pulsar.OperationTimeout)
	add("pulsar.connectionTimeout", "timeout of a TCP connection to a broker", &c.Pulsar.ConnectionTimeout)
	add("pulsar.authTokenFile", "file holding the Pulsar JWT (a mounted secret), re-read every secrets.reloadInterval and on SIGHUP; instead of pulsar.authToken", &c.Pulsar.AuthTokenFile)
	add("pulsar.drAuthTokenFile", "file holding the disaster-recovery cluster's JWT, re-read like pulsar.authTokenFile", &c.Pulsar.DRAuthTokenFile)
	add("pulsar.tls.trustCertsFile", "PEM file of the CAs that sign the brokers' certificates (pulsar+ssl:// and an https:// admin URL); empty: the system's roots", &c.Pulsar.TLS.TrustCertsFile)
	add("pulsar.tls.validateHostname", "check that the broker's certificate names the host connected to (the chain is always verified)", &c.Pulsar.TLS.ValidateHostname)
	add("pulsar.tls.certFile", "client certificate (PEM) for mutual TLS to the brokers and the admin URL, re-read on every new connection", &c.Pulsar.TLS.CertFile)
	add("pulsar.tls.keyFile", "private key (PEM) of pulsar.tls.certFile", &c.Pulsar.TLS.KeyFile)
	add("pulsar.drTLS.trustCertsFile", "as pulsar.tls.trustCertsFile, for the disaster-recovery cluster", &c.Pulsar.DRTLS.TrustCertsFile)
	add("pulsar.drTLS.validateHostname", "as pulsar.tls.validateHostname, for the disaster-recovery cluster", &c.Pulsar.DRTLS.ValidateHostname)
	add("pulsar.drTLS.certFile", "as pulsar.tls.certFile, for the disaster-recovery cluster", &c.Pulsar.DRTLS.CertFile)
	add("pulsar.drTLS.keyFile", "as pulsar.tls.keyFile, for the disaster-recovery cluster", &c.Pulsar.DRTLS.KeyFile)
	add("pulsar.oauth2.issuerURL", "OAuth2 issuer (its /.well-known/openid-configuration names the token endpoint); set, the sidecar authenticates with client credentials instead of a token", &c.Pulsar.OAuth2.IssuerURL)
	add("pulsar.oauth2.audience", "OAuth2 audience of the Pulsar cluster", &c.Pulsar.OAuth2.Audience)
	add("pulsar.oauth2.scope", "OAuth2 scopes, space separated", &c.Pulsar.OAuth2.Scope)
	add("pulsar.oauth2.clientID", "OAuth2 client id", &c.Pulsar.OAuth2.ClientID)
	add("pulsar.oauth2.clientSecret", "OAuth2 client secret (prefer pulsar.oauth2.clientSecretFile)", &c.Pulsar.OAuth2.ClientSecret)
	add("pulsar.oauth2.clientSecretFile", "file holding the OAuth2 client secret (read at start)", &c.Pulsar.OAuth2.ClientSecretFile)
	add("pulsar.drOauth2.issuerURL", "as pulsar.oauth2.issuerURL, for the disaster-recovery cluster", &c.Pulsar.DROauth2.IssuerURL)
	add("pulsar.drOauth2.audience", "as pulsar.oauth2.audience, for the disaster-recovery cluster", &c.Pulsar.DROauth2.Audience)
	add("pulsar.drOauth2.scope", "as pulsar.oauth2.scope, for the disaster-recovery cluster", &c.Pulsar.DROauth2.Scope)
	add("pulsar.drOauth2.clientID", "as pulsar.oauth2.clientID, for the disaster-recovery cluster", &c.Pulsar.DROauth2.ClientID)
	add("pulsar.drOauth2.clientSecret", "as pulsar.oauth2.clientSecret, for the disaster-recovery cluster", &c.Pulsar.DROauth2.ClientSecret)
	add("pulsar.drOauth2.clientSecretFile", "as pulsar.oauth2.clientSecretFile, for the disaster-recovery cluster", &c.Pulsar.DROauth2.ClientSecretFile)
	add("secrets.reloadInterval", "how often token files and the HTTP certificate files are read again for a rotated content (SIGHUP: at once); 0: on SIGHUP only", &c.Secrets.ReloadInterval)
	add("embedded.pulsarListen", "embedded broker's binary-protocol address (port 0: any free port)", &c.Embedded.PulsarListen)
	add("embedded.pulsarAdminListen", "embedded broker's admin REST address (\"-\" disables it)", &c.Embedded.PulsarAdminListen)
	add("embedded.persist", "keep the embedded broker's messages in <dataDir>/minipulsar and the embedded Redis's keyspace in <dataDir>/redis", &c.Embedded.Persist)
	add("embedded.redisSnapshotInterval", "how often the embedded Redis's keyspace is written to <dataDir>/redis and the idempotency log in <dataDir>/idempotency fsynced (also on a clean stop): what a crash can lose", &c.Embedded.RedisSnapshotInterval)
	add("redis.addr", "Redis host:port for idempotency keys, the delay index and consume state; empty (and no redis.addrs) runs an in-process Redis", &c.Redis.Addr)
	add("redis.addrs", "comma-separated Redis addresses: the sentinels with redis.masterName, else more than one means Redis Cluster seed nodes", &c.Redis.Addrs)
	add("redis.masterName", "Redis Sentinel master name; redis.addrs are then the sentinels", &c.Redis.MasterName)
	add("redis.username", "Redis ACL user name", &c.Redis.Username)
	add("redis.password", "Redis password (prefer redis.passwordFile or the environment variable)", &c.Redis.Password)
	add("redis.passwordFile", "file holding the Redis password (a mounted secret; trailing newline ignored), read again for every new connection, so a rotated password needs no restart", &c.Redis.PasswordFile)
	add("redis.sentinelUsername", "ACL user name for the sentinels", &c.Redis.SentinelUsername)
	add("redis.sentinelPassword", "password for the sentinels (prefer redis.sentinelPasswordFile)", &c.Redis.SentinelPassword)
	add("redis.sentinelPasswordFile", "file holding the sentinels' password, read at start (restart to rotate it)", &c.Redis.SentinelPasswordFile)
	add("redis.tls.enabled", "connect to Redis (data nodes and sentinels) over TLS, verifying the server's certificate", &c.Redis.TLS.Enabled)
	add("redis.tls.caFile", "PEM file of the CAs that Redis certificates are checked against (default: the system's)", &c.Redis.TLS.CAFile)
	add("redis.tls.certFile", "PEM client certificate for Redis mutual TLS (with redis.tls.keyFile)", &c.Redis.TLS.CertFile)
	add("redis.tls.keyFile", "PEM private key of redis.tls.certFile", &c.Redis.TLS.KeyFile)
	add("redis.tls.serverName", "name the Redis certificates must carry (default: the host of each address)", &c.Redis.TLS.ServerName)
	add("redis.db", "Redis database number", &c.Redis.DB)
	add("redis.poolSize", "most connections to Redis; a keyed produce holds one for two short calls", &c.Redis.PoolSize)
	add("redis.timeout", "deadline of each Redis call on the produce path; beyond it Redis counts as unreachable", &c.Redis.Timeout)
	add("redis.waitReplicas", "replicas that must confirm a timing-wheel message (Redis WAIT) before its produce is answered; 0: answer once the master has it (a failover can then lose it, ADR 090). Single server or Sentinel", &c.Redis.WaitReplicas)
	add("redis.waitTimeout", "longest wait for redis.waitReplicas; beyond it the produce answers 503 DELAY_NOT_REPLICATED (retry with the same idempotency key)", &c.Redis.WaitTimeout)
	add("http.requestTimeout", "deadline of one produce request, idempotency wait and broker acknowledgement included", &c.HTTP.RequestTimeout)
	add("http.readHeaderTimeout", "time allowed to read request headers", &c.HTTP.ReadHeaderTimeout)
	add("http.readTimeout", "time allowed to read a whole request", &c.HTTP.ReadTimeout)
	add("http.idleTimeout", "keep-alive connections idle longer than this are closed", &c.HTTP.IdleTimeout)
	add("http.tlsCertFile", "certificate (PEM, chain included) to serve the data plane over HTTPS; re-read when it changes", &c.HTTP.TLSCertFile)
	add("http.tlsKeyFile", "private key (PEM) of http.tlsCertFile", &c.HTTP.TLSKeyFile)
	add("management.listen", "separate listener for /metrics, /healthz, /readyz (and pprof); set, the data plane no longer serves /metrics", &c.Management.Listen)
	add("management.pprof", "serve net/http/pprof under /debug/pprof/ on the management listener", &c.Management.Pprof)
	add("producer.maxProducers", "most producers kept open; the least recently used is closed beyond it", &c.Producer.MaxProducers)
	add("producer.idleTimeout", "a producer unused for this long is closed", &c.Producer.IdleTimeout)
	add("producer.batchingMaxPublishDelay", "batch timer backstop; batches normally go as soon as nothing else is being handed over (group commit)", &c.Producer.BatchingMaxPublishDelay)
	add("producer.batchingMaxMessages", "most messages in one batch", &c.Producer.BatchingMaxMessages)
	add("producer.batchingMaxBytes", "largest batch (B, KiB, MiB)", &c.Producer.BatchingMaxBytes)
	add("producer.maxPendingMessages", "messages a producer may have awaiting acknowledgement; beyond it sends wait", &c.Producer.MaxPendingMessages)
	add("limits.maxPayloadBytes", "largest payload of one message (413 PAYLOAD_TOO_LARGE)", &c.Limits.MaxPayloadBytes)
	add("limits.maxRequestBytes", "largest request body (413 REQUEST_TOO_LARGE)", &c.Limits.MaxRequestBytes)
	add("limits.maxMessagesPerRequest", "most messages in one JSON batch", &c.Limits.MaxMessagesPerRequest)
	add("limits.maxKeyBytes", "longest message key", &c.Limits.MaxKeyBytes)
	add("limits.maxTags", "most tags on one message", &c.Limits.MaxTags)
	add("limits.maxProperties", "most user properties on one message", &c.Limits.MaxProperties)
	add("limits.maxPropertyKeyBytes", "longest property name", &c.Limits.MaxPropertyKeyBytes)
	add("limits.maxPropertyValueBytes", "longest property value", &c.Limits.MaxPropertyValueBytes)
	add("limits.maxIdempotencyKeyBytes", "longest idempotency key", &c.Limits.MaxIdempotencyKeyBytes)
	add("limits.maxDelay", "longest deliverAfter, and furthest deliverAt", &c.Limits.MaxDelay)
	add("idempotency.ttl", "how long the first result for an idempotency key is kept", &c.Idempotency.TTL)
	add("idempotency.lease", "how long a request's claim on its idempotency key lasts without renewal (renewed every third of it while the broker is awaited): a retry takes over a dead sidecar's key after at most this", &c.Idempotency.Lease)
	add("idempotency.pollInterval", "how often a retry that found its key in flight checks again", &c.Idempotency.PollInterval)
	add("trace.logLevel", "level of the per-message lifecycle log lines (debug, info, warn, error, off)", &c.Trace.LogLevel)
	add("delay.mode", "deliverAfter/deliverAt: wheel (timing wheel over Redis, every subscription type, cancel) or native (Pulsar deliverAt: Shared and Key_Shared only)", &c.Delay.Mode)
	add("delay.levels", "delay levels for delayLevel, space or comma separated, one Pulsar topic each; off disables them", &c.Delay.Levels)
	add("consume.secret", "key that signs ackIds, the same on every replica (at least 16 bytes; prefer the environment variable); empty: random per process", &c.Consume.Secret)
	add("consume.secretFile", "file holding consume.secret (read at start)", &c.Consume.SecretFile)
	add("consume.backlogScanMessages", "most messages one per-tag backlog scan reads; past it the answer is a sample (exact false)", &c.Consume.BacklogScanMessages)
	add("consume.backlogScanEntries", "most broker entries one per-tag backlog scan reads", &c.Consume.BacklogScanEntries)
	add("consume.backlogScanTime", "longest one per-tag backlog scan may take", &c.Consume.BacklogScanTime)
	add("consume.backlogInterval", "how often each subscription is scanned for the per-tag backlog gauges, by one replica at a time; 0: never", &c.Consume.BacklogInterval)
	add("trace.store", "where lifecycle events are kept for the console: sqlite, elasticsearch or off", &c.Trace.Store)
	add("trace.sqlitePath", "SQLite trace file (default <dataDir>/trace/events.db)", &c.Trace.SQLitePath)
	add("trace.retention", "events older than this are deleted (checked hourly)", &c.Trace.Retention)
	add("trace.queueSize", "events buffered between the data plane and the trace writer; beyond it they spill to <dataDir>/trace/outbox", &c.Trace.QueueSize)
	add("trace.ingestBudget", "share of one CPU the trace store may use while produce is busy; the rest waits in <dataDir>/trace/outbox until it is quiet (0: write at once)", &c.Trace.IngestBudget)
	add("trace.ingestBusyCPU", "share of the sidecar's CPUs (GOMAXPROCS) that its work outside the trace store, plus what the store needs to keep up, must reach before trace.ingestBudget applies (negative: at any CPU use)", &c.Trace.IngestBusyCPU)
	add("trace.deferMaxBytes", "outbox size past which trace events are no longer deferred: the store is written at full speed", &c.Trace.DeferMaxBytes)
	add("trace.deferMaxAge", "age of the oldest waiting trace event past which nothing is deferred any more", &c.Trace.DeferMaxAge)
	add("trace.outboxMaxBytes", "cap of <dataDir>/trace/outbox; beyond it trace events are lost and counted", &c.Trace.OutboxMaxBytes)
	add("trace.replayMinBackoff", "first wait before replaying the outbox again after the trace store refused a write", &c.Trace.ReplayMinBackoff)
	add("trace.replayMaxBackoff", "longest wait between replay attempts while the trace store refuses writes", &c.Trace.ReplayMaxBackoff)
	add("trace.elasticsearch.addresses", "comma-separated Elasticsearch URLs for trace.store=elasticsearch", &c.Trace.Elasticsearch.Addresses)
	add("trace.elasticsearch.username", "Elasticsearch user", &c.Trace.Elasticsearch.Username)
	add("trace.elasticsearch.password", "Elasticsearch password (prefer the environment variable)", &c.Trace.Elasticsearch.Password)
	add("trace.elasticsearch.apiKey", "Elasticsearch API key (prefer the environment variable)", &c.Trace.Elasticsearch.APIKey)
	add("trace.elasticsearch.passwordFile", "file holding the Elasticsearch password (read at start)", &c.Trace.Elasticsearch.PasswordFile)
	add("trace.elasticsearch.apiKeyFile", "file holding the Elasticsearch API key (read at start)", &c.Trace.Elasticsearch.APIKeyFile)
	add("trace.elasticsearch.caFile", "PEM file of the CA that signs Elasticsearch's certificate", &c.Trace.Elasticsearch.CAFile)
	add("trace.elasticsearch.certificateFingerprint", "hex SHA-256 of Elasticsearch's certificate or of its CA (as Elasticsearch prints it on first start), pinned instead of a CA file", &c.Trace.Elasticsearch.CertificateFingerprint)
	add("trace.elasticsearch.indexPrefix", "daily indices are <prefix>-events-YYYY.MM.DD", &c.Trace.Elasticsearch.IndexPrefix)
	add("trace.elasticsearch.breakerThreshold", "failed bulk requests in a row that open the circuit breaker (writes then fail fast and events wait in the outbox)", &c.Trace.Elasticsearch.BreakerThreshold)
	add("trace.elasticsearch.breakerCooldown", "how long the breaker stays open before one trial request", &c.Trace.Elasticsearch.BreakerCooldown)
	return out
}

// kebab turns a YAML path into a flag name: "producer.idleTimeout" ->
// "producer-idle-timeout", "idempotency.inFlightTTL" -> "idempotency-in-flight-ttl".
func kebab(key string) string {
	var b strings.Builder
	rs := []rune(key)
	for i, r := range rs {
		switch {
		case r == '.':
			b.WriteByte('-')
			continue
		case unicode.IsUpper(r) && i > 0 && rs[i-1] != '.':
			prevLower := unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1])
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || (unicode.IsUpper(rs[i-1]) && nextLower) {
				b.WriteByte('-')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// ErrHelp is returned by Load when -h or --help was given; the usage has
// been written to the output.
var ErrHelp = flag.ErrHelp

// Load builds the configuration from defaults, the YAML file named by
// --config or PSC_CONFIG, environment variables and flags (in that order of
// precedence, lowest first), and validates it. getenv is os.LookupEnv in
// production; usage goes to out.
func Load(args []string, getenv func(string) (string, bool), out io.Writer) (Config, error) {
	c := Default()
	settings := bind(&c)

	// Flags are parsed first but applied last, so they win.
	type flagVal struct {
		s *Setting
		v string
	}
	var given []flagVal
	var configPath string
	fs := flag.NewFlagSet("pulsar-sidecar", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&configPath, configFlag, "", "YAML configuration file (also "+configEnv+")")
	for i := range settings {
		s := &settings[i]
		fs.Var(&recorder{isBool: s.isBool, def: s.Default, rec: func(v string) error {
			given = append(given, flagVal{s, v})
			return nil
		}}, s.Flag, s.Help+" (env "+s.Env+")")
	}
	fs.Usage = func() {
		_, _ = fmt.Fprintf(fs.Output(), "Usage: pulsar-sidecar [flags]\n       pulsar-sidecar --version\n       pulsar-sidecar hash-token [token]\n"+
			"       pulsar-sidecar healthcheck [--path /healthz | --url URL] [--timeout 3s]\n\n"+
			"With no flags, runs the embedded mode (in-process broker and Redis) on 127.0.0.1:8088.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected argument %q (see --help)", ErrInvalid, fs.Arg(0))
	}

	if configPath == "" {
		configPath, _ = getenv(configEnv)
	}
	if configPath != "" {
		data, err := os.ReadFile(configPath)
		if err != nil {
			return c, fmt.Errorf("config: read %s: %w", configPath, err)
		}
		if err := decodeYAML(data, &c); err != nil {
			return c, fmt.Errorf("config: %s: %w", configPath, err)
		}
	}
	for i := range settings {
		s := &settings[i]
		if v, ok := getenv(s.Env); ok {
			if err := s.set(v); err != nil {
				return c, fmt.Errorf("%w: %s: %w", ErrInvalid, s.Env, err)
			}
		}
	}
	for _, g := range given {
		if err := g.s.set(g.v); err != nil {
			return c, fmt.Errorf("%w: --%s: %w", ErrInvalid, g.s.Flag, err)
		}
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// decodeYAML reads a YAML document into c, rejecting unknown keys.
func decodeYAML(data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Parse reads a YAML document over the defaults and validates the result.
// It is for tests and tools; the binary uses Load.
func Parse(data []byte) (Config, error) {
	c := Default()
	if err := decodeYAML(data, &c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// recorder is a flag.Value that records what was given.
type recorder struct {
	isBool bool
	def    string
	rec    func(string) error
}

func (r *recorder) String() string {
	if r == nil {
		return ""
	}
	return r.def
}
func (r *recorder) Set(v string) error { return r.rec(v) }
func (r *recorder) IsBoolFlag() bool   { return r.isBool }
