package consoleapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisRegistry is the registry users change through the console
// (docs/adr/100-registry.md): apps with their tokens (hashes only), and
// topics, stored in Redis as one JSON document with a version counter, so
// every replica serves the same. Each replica keeps the document in
// memory (Snapshot) and reloads it when the counter moves, checked every
// ReloadInterval: a change made on one replica is seen by the others
// within that interval. Subscriptions are the consume API's registrations
// (already in Redis); the registry lists and changes them through
// Subscriptions and SubscriptionWriter. Every change appends an entry to
// the audit log, a Redis list capped at AuditCap entries, in the same
// script that writes the document.
type RedisRegistry struct {
	opts RedisRegistryOptions
	log  *slog.Logger

	snap    atomic.Pointer[RegistrySnapshot]
	mu      sync.Mutex // serialises installs
	writeMu sync.Mutex // serialises this replica's writes

	stop context.CancelFunc
	done chan struct{}
}

// RedisRegistryOptions configure a RedisRegistry.
type RedisRegistryOptions struct {
	Client redis.UniversalClient
	// Prefix of the keys ("psc:" when empty): <prefix>registry:doc,
	// <prefix>registry:version, <prefix>registry:audit and
	// <prefix>registry:audit:seq. On Redis Cluster give it a hash tag: the
	// keys are written by one script.
	Prefix string
	// Bootstrap is written once, when Redis holds no registry yet (the
	// configuration file's apps and topics).
	Bootstrap RegistryDoc
	// Subscriptions lists the registered subscriptions (the consume API's);
	// nil lists none. SubscriptionWriter changes them; nil refuses.
	Subscriptions      Registry
	SubscriptionWriter SubscriptionWriter
	// Namespaces creates a topic's tenant and namespace on the broker
	// when a topic is registered with createNamespace; nil refuses that.
	Namespaces NamespaceCreator
	// OnChange is called with every new snapshot (the app hands the apps
	// to the data plane's authenticator), serially, and once by Start.
	OnChange func(*RegistrySnapshot)
	// ReloadInterval is how often the version counter is checked: the
	// bound on how late another replica's change is seen. 1s.
	ReloadInterval time.Duration
	// AuditCap is the most audit entries kept (older ones are trimmed).
	// 10000.
	AuditCap int64
	// Timeout bounds each Redis call. 2s.
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// DefaultAuditCap is the audit log's length when RedisRegistryOptions
// does not say.
const DefaultAuditCap = 10000

// RegistryDoc is the stored registry: apps with their token hashes, and
// topics. It is also the bootstrap from configuration.
type RegistryDoc struct {
	Apps   []StoredApp `json:"apps"`
	Topics []Topic     `json:"topics"`
}

// StoredApp is an app as stored: the console's view plus the hashes of
// its tokens. It never leaves the sidecar.
type StoredApp struct {
	App
	Secrets []StoredToken `json:"secrets"`
}

// StoredToken is one bearer token of an app: its id (shown in the console
// and the audit log) and the hex SHA-256 of the token.
type StoredToken struct {
	ID        string     `json:"id"`
	SHA256    string     `json:"sha256"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// TokenInfo is what the console shows of a token: never the token or its
// hash.
type TokenInfo struct {
	ID        string     `json:"id"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// RegistrySnapshot is one version of the registry, immutable.
type RegistrySnapshot struct {
	Version int64
	Doc     RegistryDoc
}

// App returns the stored app named name.
func (s *RegistrySnapshot) App(name string) (StoredApp, bool) {
	for _, a := range s.Doc.Apps {
		if a.Name == name {
			return a, true
		}
	}
	return StoredApp{}, false
}

// SubscriptionWriter registers and removes subscriptions (the consume
// API's registrations). Errors wrapping ErrSubscriptionNotFound are 404;
// *Error values keep their status and code.
type SubscriptionWriter interface {
	// PutSubscription registers or replaces a subscription and returns it,
	// with the one it replaced (nil when new).
	PutSubscription(ctx context.Context, caller string, s Subscription, opts SubscriptionOptions) (after Subscription, before *Subscription, err error)
	// DeleteSubscription removes one and returns it.
	DeleteSubscription(ctx context.Context, topic, name string) (Subscription, error)
}

// SubscriptionOptions are the consume settings a console registration may
// give besides Subscription's fields; zero values take the consume API's
// defaults.
type SubscriptionOptions struct {
	MaxDeliveries   int    `json:"maxDeliveries,omitempty"`
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
	InitialPosition string `json:"initialPosition,omitempty"`
}

// NamespaceCreator creates a tenant and namespace on the broker if they
// do not exist.
type NamespaceCreator interface {
	EnsureNamespace(ctx context.Context, tenant, namespace string) error
}

var _ Registry = (*RedisRegistry)(nil)

// NewRedisRegistry returns a registry; Start loads it.
func NewRedisRegistry(opts RedisRegistryOptions) (*RedisRegistry, error) {
	if opts.Client == nil {
		return nil, errors.New("consoleapi: RedisRegistryOptions.Client is required")
	}
	if opts.Prefix == "" {
		opts.Prefix = "psc:"
	}
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = time.Second
	}
	if opts.AuditCap <= 0 {
		opts.AuditCap = DefaultAuditCap
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if _, err := checkDoc(opts.Bootstrap); err != nil {
		return nil, err
	}
	return &RedisRegistry{opts: opts, log: opts.Logger.With("component", "registry")}, nil
}

func (r *RedisRegistry) docKey() string      { return r.opts.Prefix + "registry:doc" }
func (r *RedisRegistry) versionKey() string  { return r.opts.Prefix + "registry:version" }
func (r *RedisRegistry) auditKey() string    { return r.opts.Prefix + "registry:audit" }
func (r *RedisRegistry) auditSeqKey() string { return r.opts.Prefix + "registry:audit:seq" }

// writeScript stores a new document if the version is still the one it
// was made from, bumps the version and appends the audit entry (auditLua);
// -1 when another write came first.
var writeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[2]) or '0'
if v ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
local nv = redis.call('INCR', KEYS[2])
if ARGV[3] ~= '' then` + auditLua + `end
return nv
`)

// auditScript appends an audit entry alone.
var auditScript = redis.NewScript(`if ARGV[3] ~= '' then` + auditLua + `end
return 0
`)

// auditLua numbers an entry (KEYS[4], the sequence) and pushes
// "<seq>|<json>" (ARGV[3]) on the list KEYS[3], newest first, trimmed to
// ARGV[4] entries. A list, not a stream: the embedded Redis's snapshot
// keeps lists (internal/embedredis).
const auditLua = `
  local seq = redis.call('INCR', KEYS[4])
  redis.call('LPUSH', KEYS[3], seq .. '|' .. ARGV[3])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
`

// Start loads the registry, writing the bootstrap when Redis has none,
// calls OnChange, and starts the reload loop. It fails when Redis does
// not answer.
func (r *RedisRegistry) Start(ctx context.Context) error {
	ver, doc, err := r.read(ctx)
	if err != nil {
		return fmt.Errorf("consoleapi: load the registry: %w", err)
	}
	if ver == 0 {
		boot := r.opts.Bootstrap
		entry := &AuditEntry{Actor: "config", Action: "registry.bootstrap", Kind: "registry", Object: "registry",
			After: mustJSON(docView(boot))}
		nv, err := r.write(ctx, 0, boot, entry)
		if err != nil {
			return fmt.Errorf("consoleapi: write the registry's bootstrap: %w", err)
		}
		if nv > 0 {
			r.log.Info("registry bootstrapped from the configuration", "apps", len(boot.Apps), "topics", len(boot.Topics))
		}
		if ver, doc, err = r.read(ctx); err != nil { // another replica may have come first
			return fmt.Errorf("consoleapi: load the registry: %w", err)
		}
	} else {
		r.warnConfigDrift(doc)
	}
	r.install(ver, doc)
	// The loop outlives Start's context (a start timeout) until Close.
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop, r.done = stop, make(chan struct{})
	go r.loop(loopCtx)
	return nil
}

// warnConfigDrift logs the configured apps the stored registry no longer
// matches: the configuration is a bootstrap, written once.
func (r *RedisRegistry) warnConfigDrift(doc RegistryDoc) {
	for _, ca := range r.opts.Bootstrap.Apps {
		i := slices.IndexFunc(doc.Apps, func(a StoredApp) bool { return a.Name == ca.Name })
		if i < 0 {
			r.log.Warn("a configured app is not in the registry (it was deleted through the console; the configuration is only a bootstrap)", "app", ca.Name)
		}
	}
}

// Close stops the reload loop.
func (r *RedisRegistry) Close() {
	if r.stop != nil {
		r.stop()
		<-r.done
		r.stop = nil
	}
}

func (r *RedisRegistry) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.opts.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.Reload(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("registry reload failed; serving the last one loaded", "err", err)
		}
	}
}

// Reload reads the registry if its version moved.
func (r *RedisRegistry) Reload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	v, err := r.opts.Client.Get(ctx, r.versionKey()).Int64()
	if errors.Is(err, redis.Nil) {
		v, err = 0, nil
	}
	if err != nil {
		return err
	}
	if cur := r.snap.Load(); cur != nil && cur.Version == v {
		return nil
	}
	ver, doc, err := r.read(ctx)
	if err != nil {
		return err
	}
	r.install(ver, doc)
	return nil
}

// read returns the stored version and document (0 and an empty document
// when there is none).
func (r *RedisRegistry) read(ctx context.Context) (int64, RegistryDoc, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	var doc RegistryDoc
	vals, err := r.opts.Client.MGet(ctx, r.versionKey(), r.docKey()).Result()
	if err != nil {
		return 0, doc, err
	}
	vs, _ := vals[0].(string)
	ds, _ := vals[1].(string)
	if vs == "" {
		return 0, doc, nil
	}
	ver, err := strconv.ParseInt(vs, 10, 64)
	if err != nil {
		return 0, doc, fmt.Errorf("registry version %q: %w", vs, err)
	}
	if ds != "" {
		if err := json.Unmarshal([]byte(ds), &doc); err != nil {
			return 0, doc, fmt.Errorf("registry document: %w", err)
		}
	}
	return ver, doc, nil
}

// write runs writeScript; 0 when the version moved.
func (r *RedisRegistry) write(ctx context.Context, ver int64, doc RegistryDoc, entry *AuditEntry) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	normalizeDoc(&doc)
	body, err := json.Marshal(doc)
	if err != nil {
		return 0, err
	}
	audit := ""
	if entry != nil {
		entry.Time = r.opts.Now().UTC()
		audit = string(mustJSON(entry))
	}
	nv, err := writeScript.Run(ctx, r.opts.Client, []string{r.docKey(), r.versionKey(), r.auditKey(), r.auditSeqKey()},
		strconv.FormatInt(ver, 10), string(body), audit, r.opts.AuditCap).Int64()
	if err != nil {
		return 0, err
	}
	if nv < 0 {
		return 0, nil
	}
	return nv, nil
}

// install makes a version the served one (unless a newer one is) and
// tells OnChange.
func (r *RedisRegistry) install(ver int64, doc RegistryDoc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.snap.Load(); cur != nil && cur.Version >= ver {
		return
	}
	normalizeDoc(&doc)
	s := &RegistrySnapshot{Version: ver, Doc: doc}
	r.snap.Store(s)
	if r.opts.OnChange != nil {
		r.opts.OnChange(s)
	}
}

// Snapshot is the registry served now (empty before Start).
func (r *RedisRegistry) Snapshot() *RegistrySnapshot {
	if s := r.snap.Load(); s != nil {
		return s
	}
	return &RegistrySnapshot{}
}

// mutate applies fn to the current document and stores the result with
// fn's audit entry, retrying when another write came first. fn returns an
// *Error for the caller's mistakes; it must not keep doc.
func (r *RedisRegistry) mutate(ctx context.Context, fn func(doc *RegistryDoc) (*AuditEntry, error)) error {
	// Writes of this replica take turns; only other replicas' writes can
	// make the version check fail, and then a short random pause spreads
	// the retries.
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	for attempt := range 16 {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(1+mrand.IntN(5*attempt)) * time.Millisecond):
			case <-ctx.Done():
				return registryError(ctx.Err())
			}
		}
		ver, doc, err := r.read(ctx)
		if err != nil {
			return registryError(err)
		}
		r.pruneExpired(&doc)
		entry, err := fn(&doc)
		if err != nil {
			return err
		}
		nv, err := r.write(ctx, ver, doc, entry)
		if err != nil {
			return registryError(err)
		}
		if nv > 0 {
			r.install(nv, doc)
			return nil
		}
	}
	return registryError(errors.New("the registry changed under every attempt"))
}

// pruneExpired drops tokens whose grace period is over.
func (r *RedisRegistry) pruneExpired(doc *RegistryDoc) {
	now := r.opts.Now()
	for i := range doc.Apps {
		doc.Apps[i].Secrets = slices.DeleteFunc(doc.Apps[i].Secrets, func(t StoredToken) bool {
			return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
		})
	}
}

// appendAudit adds an entry outside a document write (subscription
// changes, which the consume registry stores).
func (r *RedisRegistry) appendAudit(ctx context.Context, e *AuditEntry) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	e.Time = r.opts.Now().UTC()
	return auditScript.Run(ctx, r.opts.Client, []string{r.docKey(), r.versionKey(), r.auditKey(), r.auditSeqKey()},
		"", "", string(mustJSON(e)), r.opts.AuditCap).Err()
}

func normalizeDoc(doc *RegistryDoc) {
	if doc.Apps == nil {
		doc.Apps = []StoredApp{}
	}
	if doc.Topics == nil {
		doc.Topics = []Topic{}
	}
	for i := range doc.Apps {
		a := &doc.Apps[i]
		a.Permissions.Produce = nonNil(a.Permissions.Produce)
		a.Permissions.Consume = nonNil(a.Permissions.Consume)
		if a.Secrets == nil {
			a.Secrets = []StoredToken{}
		}
		a.Tokens = make([]TokenInfo, len(a.Secrets))
		for j, t := range a.Secrets {
			a.Tokens[j] = TokenInfo{ID: t.ID, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
		}
	}
	sort.Slice(doc.Apps, func(i, j int) bool { return doc.Apps[i].Name < doc.Apps[j].Name })
	sort.Slice(doc.Topics, func(i, j int) bool { return doc.Topics[i].Name < doc.Topics[j].Name })
}

// checkDoc validates a bootstrap document as NewStaticRegistry does.
func checkDoc(doc RegistryDoc) (*StaticRegistry, error) {
	cfg := RegistryConfig{Topics: doc.Topics}
	for _, a := range doc.Apps {
		cfg.Apps = append(cfg.Apps, a.App)
	}
	return NewStaticRegistry(cfg)
}

// docView is a document as the audit log shows it: no token hashes.
func docView(doc RegistryDoc) map[string]any {
	normalizeDoc(&doc)
	apps := make([]App, len(doc.Apps))
	for i, a := range doc.Apps {
		apps[i] = a.App
	}
	return map[string]any{"apps": apps, "topics": doc.Topics}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own types are marshalled
	}
	return b
}

// newTokenID returns a token id: 12 hex digits.
func newTokenID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Apps implements Registry.
func (r *RedisRegistry) Apps(context.Context) ([]App, error) {
	s := r.Snapshot()
	out := make([]App, len(s.Doc.Apps))
	for i, a := range s.Doc.Apps {
		out[i] = a.App
	}
	return out, nil
}

// Topics implements Registry: the registered topics and those with a
// registered subscription, ordered by name.
func (r *RedisRegistry) Topics(ctx context.Context) ([]Topic, error) {
	s := r.Snapshot()
	out := slices.Clone(s.Doc.Topics)
	if r.opts.Subscriptions != nil {
		subTopics, err := r.opts.Subscriptions.Topics(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range subTopics {
			if !slices.ContainsFunc(out, func(x Topic) bool { return x.Name == t.Name }) {
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Subscriptions implements Registry.
func (r *RedisRegistry) Subscriptions(ctx context.Context, topic string) ([]Subscription, error) {
	if r.opts.Subscriptions == nil {
		return []Subscription{}, nil
	}
	return r.opts.Subscriptions.Subscriptions(ctx, topic)
}
