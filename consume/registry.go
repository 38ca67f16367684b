package consume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Registry keeps subscriptions in Redis so that every replica sees them:
//
//	{prefix}sub:{tenant}/{namespace}/{topic}/{subscription}   hash, one field per setting
//	{prefix}subs:{tenant}/{namespace}/{topic}                  set of the topic's subscription names
//	{prefix}subs                                               set of every subscription path
//
// The hash fields are tagFilter, type, ackTimeout, maxDeliveries,
// deadLetterTopic, expectedConsumers (a JSON array), initialPosition,
// createdAt and updatedAt (RFC 3339), updatedBy and version, so redis-cli
// and the console can read them directly. Writes go through Lua scripts,
// so a hash and its index entries change together.
type Registry struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
}

// NewRegistry returns a registry on rdb with keys under prefix ("psc:").
func NewRegistry(rdb redis.UniversalClient, prefix string, timeout time.Duration) *Registry {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Registry{rdb: rdb, prefix: prefix, timeout: timeout}
}

func (g *Registry) subKey(path string) string   { return g.prefix + "sub:" + path }
func (g *Registry) topicKey(path string) string { return g.prefix + "subs:" + path }
func (g *Registry) allKey() string              { return g.prefix + "subs" }

// putScript writes the hash, keeps createdAt, bumps version and indexes the
// subscription. KEYS: hash, topic set, global set. ARGV: name, path, now,
// then field/value pairs. Returns {created (0/1), version, createdAt}.
var putScript = redis.NewScript(`
local created = redis.call('HGET', KEYS[1], 'createdAt')
local isNew = 0
if not created then
  created = ARGV[3]
  isNew = 1
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
local args = {'createdAt', created}
for i = 4, #ARGV, 2 do
  table.insert(args, ARGV[i])
  table.insert(args, ARGV[i + 1])
end
redis.call('HSET', KEYS[1], unpack(args))
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return {isNew, version, created}
`)

// deleteScript removes the hash and its index entries. Returns 1 when it existed.
var deleteScript = redis.NewScript(`
local n = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[2])
return n
`)

const timeLayout = time.RFC3339Nano

// Put stores s (created or replaced) and fills in its CreatedAt and
// Version. It reports whether the subscription is new.
func (g *Registry) Put(ctx context.Context, s *Subscription) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	ref := s.Ref()
	consumers := "[]"
	if len(s.ExpectedConsumers) > 0 {
		b, err := json.Marshal(s.ExpectedConsumers)
		if err != nil {
			return false, err
		}
		consumers = string(b)
	}
	now := s.UpdatedAt.UTC().Format(timeLayout)
	res, err := putScript.Run(ctx, g.rdb,
		[]string{g.subKey(ref.Path()), g.topicKey(ref.TopicRef().Path()), g.allKey()},
		ref.Subscription, ref.Path(), now,
		"tagFilter", s.TagFilter,
		"type", s.Type,
		"ackTimeout", s.AckTimeout,
		"maxDeliveries", s.MaxDeliveries,
		"deadLetterTopic", s.DeadLetterTopic,
		"expectedConsumers", consumers,
		"initialPosition", s.InitialPosition,
		"dedupe", s.Dedupe,
		"updatedAt", now,
		"updatedBy", s.UpdatedBy,
	).Slice()
	if err != nil {
		return false, err
	}
	if len(res) != 3 {
		return false, fmt.Errorf("consume: put script answered %v", res)
	}
	isNew, _ := res[0].(int64)
	s.Version, _ = res[1].(int64)
	created, _ := res[2].(string)
	if s.CreatedAt, err = time.Parse(timeLayout, created); err != nil {
		return false, fmt.Errorf("consume: stored createdAt %q: %w", created, err)
	}
	return isNew == 1, nil
}

// Get reads a subscription; it answers ErrNotFound when there is none.
func (g *Registry) Get(ctx context.Context, ref SubscriptionRef) (*Subscription, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	m, err := g.rdb.HGetAll(ctx, g.subKey(ref.Path())).Result()
	if err != nil {
		return nil, err
	}
	return parseStored(ref, m)
}

func parseStored(ref SubscriptionRef, m map[string]string) (*Subscription, error) {
	if len(m) == 0 || m["type"] == "" {
		return nil, ErrNotFound
	}
	s := &Subscription{Tenant: ref.Tenant, Namespace: ref.Namespace, Topic: ref.Topic, Subscription: ref.Subscription,
		TagFilter: m["tagFilter"], Type: m["type"], AckTimeout: m["ackTimeout"], DeadLetterTopic: m["deadLetterTopic"],
		InitialPosition: m["initialPosition"], Dedupe: m["dedupe"], UpdatedBy: m["updatedBy"]}
	var err error
	if s.MaxDeliveries, err = strconv.Atoi(m["maxDeliveries"]); err != nil {
		return nil, fmt.Errorf("consume: stored maxDeliveries of %s: %w", ref.Path(), err)
	}
	if s.Version, err = strconv.ParseInt(m["version"], 10, 64); err != nil {
		return nil, fmt.Errorf("consume: stored version of %s: %w", ref.Path(), err)
	}
	if v := m["expectedConsumers"]; v != "" && v != "[]" {
		if err := json.Unmarshal([]byte(v), &s.ExpectedConsumers); err != nil {
			return nil, fmt.Errorf("consume: stored expectedConsumers of %s: %w", ref.Path(), err)
		}
	}
	if s.CreatedAt, err = time.Parse(timeLayout, m["createdAt"]); err != nil {
		return nil, fmt.Errorf("consume: stored createdAt of %s: %w", ref.Path(), err)
	}
	if s.UpdatedAt, err = time.Parse(timeLayout, m["updatedAt"]); err != nil {
		return nil, fmt.Errorf("consume: stored updatedAt of %s: %w", ref.Path(), err)
	}
	if err := s.compileStored(); err != nil {
		return nil, fmt.Errorf("consume: %s: %w", ref.Path(), err)
	}
	return s, nil
}

// Delete removes a subscription; it answers ErrNotFound when there was none.
func (g *Registry) Delete(ctx context.Context, ref SubscriptionRef) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	n, err := deleteScript.Run(ctx, g.rdb,
		[]string{g.subKey(ref.Path()), g.topicKey(ref.TopicRef().Path()), g.allKey()},
		ref.Subscription, ref.Path()).Int64()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// List returns the topic's subscriptions sorted by name.
func (g *Registry) List(ctx context.Context, topic TopicRef) ([]*Subscription, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	names, err := g.rdb.SMembers(ctx, g.topicKey(topic.Path())).Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	pipe := g.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(names))
	for i, n := range names {
		ref := SubscriptionRef{Tenant: topic.Tenant, Namespace: topic.Namespace, Topic: topic.Topic, Subscription: n}
		cmds[i] = pipe.HGetAll(ctx, g.subKey(ref.Path()))
	}
	if len(names) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]*Subscription, 0, len(names))
	for i, n := range names {
		ref := SubscriptionRef{Tenant: topic.Tenant, Namespace: topic.Namespace, Topic: topic.Topic, Subscription: n}
		s, err := parseStored(ref, cmds[i].Val())
		if errors.Is(err, ErrNotFound) {
			continue // deleted between SMEMBERS and HGETALL
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// All returns every registered subscription, sorted by path (tenant,
// namespace, topic, subscription), for the console's registry. It reads
// the global index and then each hash; one deleted in between is left out.
func (g *Registry) All(ctx context.Context) ([]*Subscription, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	paths, err := g.rdb.SMembers(ctx, g.allKey()).Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	refs := make([]SubscriptionRef, 0, len(paths))
	for _, p := range paths {
		parts := strings.Split(p, "/")
		if len(parts) != 4 {
			return nil, fmt.Errorf("consume: index entry %q is not tenant/namespace/topic/subscription", p)
		}
		refs = append(refs, SubscriptionRef{Tenant: parts[0], Namespace: parts[1], Topic: parts[2], Subscription: parts[3]})
	}
	if len(refs) == 0 {
		return []*Subscription{}, nil
	}
	pipe := g.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(refs))
	for i, ref := range refs {
		cmds[i] = pipe.HGetAll(ctx, g.subKey(ref.Path()))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]*Subscription, 0, len(refs))
	for i, ref := range refs {
		s, err := parseStored(ref, cmds[i].Val())
		if errors.Is(err, ErrNotFound) {
			continue // deleted between SMEMBERS and HGETALL
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// configCache keeps what a replica last read of each subscription for a
// short time, so the data path does not ask Redis on every request. A
// replica sees another replica's PUT or DELETE within the refresh interval.
type configCache struct {
	reg     *Registry
	refresh time.Duration
	now     func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	sub *Subscription // nil: not registered
	at  time.Time
}

// maxCacheEntries bounds the cache; beyond it the cache is cleared.
const maxCacheEntries = 100000

func newConfigCache(reg *Registry, refresh time.Duration, now func() time.Time) *configCache {
	return &configCache{reg: reg, refresh: refresh, now: now, entries: map[string]cacheEntry{}}
}

// get returns the subscription, ErrNotFound, or a store error.
func (c *configCache) get(ctx context.Context, ref SubscriptionRef) (*Subscription, error) {
	path := ref.Path()
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[path]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.refresh && now.Sub(e.at) >= 0 {
		if e.sub == nil {
			return nil, ErrNotFound
		}
		return e.sub, nil
	}
	s, err := c.reg.Get(ctx, ref)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	c.set(path, s, now)
	if s == nil {
		return nil, ErrNotFound
	}
	return s, nil
}

func (c *configCache) set(path string, s *Subscription, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCacheEntries {
		clear(c.entries)
	}
	c.entries[path] = cacheEntry{sub: s, at: now}
}
