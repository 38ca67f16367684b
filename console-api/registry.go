package consoleapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/pulsar-sidecar/pulsar-sidecar/tagfilter"
)

// Registry is the console's read-only view of what is configured: apps and
// their permissions, topics, and subscriptions with their tag filters and
// expected consumers. StaticRegistry serves it from configuration; a
// Redis-backed registry can implement the same interface. Implementations
// are safe for concurrent use and never expose tokens or token hashes (App
// has no field for them).
type Registry interface {
	// Apps returns every app, ordered by name.
	Apps(ctx context.Context) ([]App, error)
	// Topics returns every registered topic, ordered by name.
	Topics(ctx context.Context) ([]Topic, error)
	// Subscriptions returns the subscriptions registered on topic (a full
	// name), or on every topic when topic is "", ordered by topic and name.
	Subscriptions(ctx context.Context, topic string) ([]Subscription, error)
}

// App is an application (a producer or consumer group) and what it may do.
type App struct {
	Name        string      `json:"name" yaml:"name"`
	Description string      `json:"description,omitempty" yaml:"description"`
	Permissions Permissions `json:"permissions" yaml:"permissions"`
	RateLimit   *RateLimit  `json:"rateLimit,omitempty" yaml:"rateLimit"`
	// ConsoleRole is the app's console role (viewer, operator, admin)
	// when Permissions.Console is set.
	ConsoleRole Role `json:"consoleRole,omitempty" yaml:"consoleRole"`
	// Tokens are the app's bearer tokens by id (the Redis registry's):
	// never a token or its hash.
	Tokens []TokenInfo `json:"tokens,omitempty" yaml:"-"`
}

// Permissions are topic patterns ("tenant/ns/topic", "tenant/ns/*",
// "tenant/*", "*") per action, and whether the app may use the console.
type Permissions struct {
	Produce []string `json:"produce" yaml:"produce"`
	Consume []string `json:"consume" yaml:"consume"`
	Console bool     `json:"console" yaml:"console"`
}

// RateLimit is an app's produce rate limit.
type RateLimit struct {
	MessagesPerSecond float64 `json:"messagesPerSecond" yaml:"messagesPerSecond"`
	Burst             int     `json:"burst" yaml:"burst"`
}

// Topic is a registered topic.
type Topic struct {
	Name        string `json:"name" yaml:"name"` // full name: persistent://tenant/ns/topic
	Description string `json:"description,omitempty" yaml:"description"`
	Partitions  int    `json:"partitions" yaml:"partitions"`
	// DeadLetterTopic is where the sidecar moves messages that exceed their
	// deliveries, when configured.
	DeadLetterTopic string `json:"deadLetterTopic,omitempty" yaml:"deadLetterTopic"`
}

// Subscription is a registered (expected) subscription of a topic.
type Subscription struct {
	Topic string `json:"topic" yaml:"topic"`
	Name  string `json:"name" yaml:"name"`
	// TagFilter is the subscription's tag expression ("PAY_1001 ||
	// PAY_1002"); "" receives every message.
	TagFilter string `json:"tagFilter,omitempty" yaml:"tagFilter"`
	// Type is the Pulsar subscription type (Shared, Key_Shared, ...).
	Type string `json:"type,omitempty" yaml:"type"`
	// ExpectedConsumers names the apps or consumers that should consume it.
	ExpectedConsumers []string `json:"expectedConsumers" yaml:"expectedConsumers"`
	Description       string   `json:"description,omitempty" yaml:"description"`
}

// RegistryConfig is the configuration a StaticRegistry serves.
type RegistryConfig struct {
	Apps          []App          `yaml:"apps"`
	Topics        []Topic        `yaml:"topics"`
	Subscriptions []Subscription `yaml:"subscriptions"`
}

// StaticRegistry serves a fixed RegistryConfig.
type StaticRegistry struct {
	apps   []App
	topics []Topic
	subs   []Subscription
}

var _ Registry = (*StaticRegistry)(nil)

// ErrInvalidRegistry wraps every configuration problem NewStaticRegistry
// reports.
var ErrInvalidRegistry = errors.New("consoleapi: invalid registry")

// NewStaticRegistry checks cfg (unique names, valid topic names, tag
// filters that compile) and copies it. Topics may be given short
// (tenant/ns/topic); they are stored full.
func NewStaticRegistry(cfg RegistryConfig) (*StaticRegistry, error) {
	r := &StaticRegistry{}
	subs := map[[2]string]bool{}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidRegistry}, args...)...))
	}
	seen := map[string]bool{}
	for i, a := range cfg.Apps {
		if a.Name == "" || seen[a.Name] {
			bad("apps[%d]: name %q is empty or repeated", i, a.Name)
			continue
		}
		seen[a.Name] = true
		a.Permissions.Produce = nonNil(slices.Clone(a.Permissions.Produce))
		a.Permissions.Consume = nonNil(slices.Clone(a.Permissions.Consume))
		if a.RateLimit != nil {
			rl := *a.RateLimit
			a.RateLimit = &rl
		}
		r.apps = append(r.apps, a)
	}
	seen = map[string]bool{}
	for i, t := range cfg.Topics {
		name, err := NormalizeTopic(t.Name)
		if err != nil {
			bad("topics[%d]: %v", i, err)
			continue
		}
		if seen[name] {
			bad("topics[%d]: %s is repeated", i, name)
			continue
		}
		seen[name] = true
		t.Name = name
		if t.DeadLetterTopic != "" {
			if t.DeadLetterTopic, err = NormalizeTopic(t.DeadLetterTopic); err != nil {
				bad("topics[%d].deadLetterTopic: %v", i, err)
			}
		}
		r.topics = append(r.topics, t)
	}
	for i, s := range cfg.Subscriptions {
		name, err := NormalizeTopic(s.Topic)
		if err != nil {
			bad("subscriptions[%d]: %v", i, err)
			continue
		}
		s.Topic = name
		key := [2]string{s.Topic, s.Name}
		if s.Name == "" {
			bad("subscriptions[%d]: no name", i)
			continue
		}
		if subs[key] {
			bad("subscriptions[%d]: %s on %s is repeated", i, s.Name, s.Topic)
			continue
		}
		if _, err := tagfilter.Compile(s.TagFilter); err != nil {
			bad("subscriptions[%d] (%s): tag filter %q: %v", i, s.Name, s.TagFilter, err)
			continue
		}
		subs[key] = true
		s.ExpectedConsumers = nonNil(slices.Clone(s.ExpectedConsumers))
		r.subs = append(r.subs, s)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(r.apps, func(i, j int) bool { return r.apps[i].Name < r.apps[j].Name })
	sort.Slice(r.topics, func(i, j int) bool { return r.topics[i].Name < r.topics[j].Name })
	sort.Slice(r.subs, func(i, j int) bool {
		if r.subs[i].Topic != r.subs[j].Topic {
			return r.subs[i].Topic < r.subs[j].Topic
		}
		return r.subs[i].Name < r.subs[j].Name
	})
	return r, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Apps implements Registry.
func (r *StaticRegistry) Apps(context.Context) ([]App, error) { return slices.Clone(r.apps), nil }

// Topics implements Registry.
func (r *StaticRegistry) Topics(context.Context) ([]Topic, error) { return slices.Clone(r.topics), nil }

// Subscriptions implements Registry.
func (r *StaticRegistry) Subscriptions(_ context.Context, topic string) ([]Subscription, error) {
	var out []Subscription
	for _, s := range r.subs {
		if topic == "" || s.Topic == topic {
			out = append(out, s)
		}
	}
	return out, nil
}
