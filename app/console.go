package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/console-api/web"
	"github.com/pulsar-sidecar/pulsar-sidecar/consume"
	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/durable"
)

// buildConsole prepares the console API over the trace store; nil when
// there is no store. It is mounted at /console/v1. It runs after the
// durable sender, the delay engine and the consume service have started,
// so the registry and every stats provider are the running components
// (issue 14): subscriptions registered through the consume API, the wheel
// and level topics, the spool, and the circuit breakers. Its backlog
// collector (psc_subscription_backlog_*) goes on the app's registry.
func (a *App) buildConsole() (*consoleapi.API, error) {
	if a.traceStore == nil {
		return nil, nil
	}
	opts := consoleapi.Options{
		Store:  a.traceStore,
		Open:   a.registry.open, // protected mode: loopback only, no apps in the config or the registry
		Logger: a.log,           // the console names itself
		// Counted with the data plane's errors, by code.
		OnError:       func(_ int, code string) { a.proxyMetrics.AddError(code) },
		ScheduleGrace: a.scheduleGrace,
	}
	adm, err := a.pulsarAdmin()
	if err != nil {
		return nil, err
	}
	if adm != nil {
		a.consoleAdmin = consoleapi.PulsarAdminOf(adm)
		opts.Broker = a.consoleAdmin
	}
	opts.Registry = a.registry.reg // the live registry in Redis (registry.go)
	if a.consume != nil {
		opts.Providers.TagBacklog = consoleTagBacklog{a.consume}
	}
	if a.delay != nil {
		opts.Providers.Delay = consoleDelay{e: a.delay, broker: opts.Broker}
		opts.Providers.Schedules = consoleSchedules{a.delay}
	}
	if a.durable != nil {
		opts.Providers.Spool = consoleSpool{a.durable}
		opts.Providers.Clusters = consoleClusters{a.durable}
	}
	opts.Ops = a.consoleOps()
	if !opts.Open {
		opts.Authorizer = consoleapi.AuthorizerFunc(a.authorizeConsole)
	}
	api, err := consoleapi.New(opts)
	if err != nil {
		return nil, err
	}
	if err := a.reg.Register(api.Collector()); err != nil {
		return nil, fmt.Errorf("app: register the console's backlog metrics: %w", err)
	}
	return api, nil
}

// mountConsoleWeb serves the console's web page at /console/ (beside the
// API at /console/v1); /console redirects there.
func mountConsoleWeb(root *gin.Engine) {
	h := gin.WrapH(web.Handler())
	root.GET("/console", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, web.Prefix) })
	root.GET(web.Prefix, h)
	root.HEAD(web.Prefix, h)
	root.GET(web.Prefix+"assets/*file", h)
	root.HEAD(web.Prefix+"assets/*file", h)
}

// authorizeConsole lets in apps with the console permission.
func (a *App) authorizeConsole(r *http.Request) (consoleapi.Principal, error) {
	app, console, err := a.proxy.Authenticate(r)
	if err != nil {
		return consoleapi.Principal{}, fmt.Errorf("%w: %v", consoleapi.ErrUnauthenticated, err) //nolint:errorlint // the proxy's error is only a message here
	}
	if !console {
		return consoleapi.Principal{App: app}, fmt.Errorf("%w: app %q has no console permission", consoleapi.ErrForbidden, app)
	}
	return consoleapi.Principal{App: app, Role: a.consoleRole(app)}, nil
}

// consoleRole is an app's console role in the live registry (viewer when
// unset).
func (a *App) consoleRole(app string) consoleapi.Role { return a.registry.role(app) }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// consoleRegistry lists the subscriptions registered through the consume
// API (Redis, so every replica answers the same) with the topics they are
// on, for the live registry (registry.go), which lists the apps.
type consoleRegistry struct {
	subs *consume.Registry
}

var _ consoleapi.Registry = consoleRegistry{}

func (r consoleRegistry) Apps(context.Context) ([]consoleapi.App, error) {
	return []consoleapi.App{}, nil
}

// Topics are the topics with a registered subscription, ordered by name.
func (r consoleRegistry) Topics(ctx context.Context) ([]consoleapi.Topic, error) {
	subs, err := r.subs.All(ctx)
	if err != nil {
		return nil, err
	}
	out := []consoleapi.Topic{}
	for _, s := range subs { // sorted by path, so by topic
		name := s.Ref().TopicName()
		if n := len(out); n == 0 || out[n-1].Name != name {
			out = append(out, consoleapi.Topic{Name: name})
		}
	}
	return out, nil
}

// Subscriptions are the registered subscriptions of topic (a full name),
// or of every topic when topic is "".
func (r consoleRegistry) Subscriptions(ctx context.Context, topic string) ([]consoleapi.Subscription, error) {
	var subs []*consume.Subscription
	var err error
	if topic == "" {
		subs, err = r.subs.All(ctx)
	} else {
		tr, perr := consume.ParseTopicName(topic)
		if perr != nil {
			return []consoleapi.Subscription{}, nil // non-persistent: the consume API registers none
		}
		subs, err = r.subs.List(ctx, tr)
	}
	if err != nil {
		return nil, err
	}
	out := make([]consoleapi.Subscription, 0, len(subs))
	for _, s := range subs {
		out = append(out, consoleapi.Subscription{
			Topic: s.Ref().TopicName(), Name: s.Subscription, TagFilter: s.TagFilter,
			Type: pulsarSubscriptionType(s.Type), ExpectedConsumers: slices.Clone(nonNil(s.ExpectedConsumers)),
		})
	}
	return out, nil
}

// pulsarSubscriptionType names a consume API type as Pulsar does.
func pulsarSubscriptionType(t string) string {
	if t == consume.TypeKeyShared {
		return "Key_Shared"
	}
	return "Shared"
}

// consoleTagBacklog answers the console's GET /stats/tag-backlog from the
// consume engine's per-tag backlog (consume/backlog.go).
type consoleTagBacklog struct{ svc *consume.Service }

func (p consoleTagBacklog) TagBacklog(ctx context.Context, topic, subscription string) ([]consoleapi.TagBacklog, error) {
	tr, err := consume.ParseTopicName(topic)
	if err != nil {
		return nil, tagBacklogError(err)
	}
	var refs []consume.SubscriptionRef
	if subscription != "" {
		refs = append(refs, consume.SubscriptionRef{Tenant: tr.Tenant, Namespace: tr.Namespace, Topic: tr.Topic, Subscription: subscription})
	} else {
		subs, err := p.svc.ListSubscriptions(ctx, tr)
		if err != nil {
			return nil, tagBacklogError(err)
		}
		for _, s := range subs {
			refs = append(refs, s.Ref())
		}
	}
	var rows []consoleapi.TagBacklog
	for _, ref := range refs {
		b, err := p.svc.TagBacklog(ctx, ref)
		if err != nil {
			return nil, tagBacklogError(err)
		}
		for _, t := range b.Tags {
			rows = append(rows, consoleapi.TagBacklog{
				Subscription: ref.Subscription, Tag: t.Tag, Messages: t.Pending, Exact: b.Exact,
				ScannedMessages: b.Scanned.Messages, Estimated: t.Estimated, Oldest: t.Oldest,
				Ready: t.Held.Ready, InFlight: t.Held.InFlight,
			})
		}
	}
	return rows, nil
}

// tagBacklogError turns the consume API's answers for the caller's
// mistakes into the console's (404 SUBSCRIPTION_NOT_FOUND, 400
// INVALID_TOPIC); the rest stay errors of the provider (503).
func tagBacklogError(err error) error {
	e := consume.AsError(err)
	switch e.Code {
	case consume.CodeSubscriptionNotFound:
		return fmt.Errorf("%w: %s", consoleapi.ErrSubscriptionNotFound, e.Message)
	case consume.CodeInvalidTopic, consume.CodeInvalidSubscription:
		return fmt.Errorf("%w: %s", consoleapi.ErrInvalidTopic, e.Message)
	}
	return err
}

// consoleDelay answers GET /stats/delay: the wheel's messages from its
// index in Redis (every replica's), and each delay level's from the
// backlog of its topic on the broker (when the console has one).
type consoleDelay struct {
	e      *delay.Engine
	broker consoleapi.Broker
}

func (p consoleDelay) DelayStats(ctx context.Context) (consoleapi.DelayStats, error) {
	var st consoleapi.DelayStats
	n, err := p.e.WheelPending(ctx)
	if err != nil {
		return st, err
	}
	st.ByLevel = map[string]int64{"wheel": n}
	st.Pending = n
	next, err := p.e.List(ctx, delay.Query{Limit: 1})
	if err != nil {
		return st, err
	}
	if len(next) > 0 {
		due := next[0].Due.UTC()
		st.NextDueAt = &due
	}
	for _, ls := range p.e.LevelStats() {
		if !ls.Waiting.IsZero() && (st.NextDueAt == nil || ls.Waiting.Before(*st.NextDueAt)) {
			w := ls.Waiting.UTC()
			st.NextDueAt = &w
		}
		if p.broker == nil {
			continue
		}
		ts, err := p.broker.Stats(ctx, ls.Topic)
		if errors.Is(err, consoleapi.ErrTopicNotFound) {
			st.ByLevel[ls.Level] = 0 // nothing was ever sent to this level
			continue
		}
		if err != nil {
			return st, err
		}
		var backlog int64
		for _, s := range ts.Subscriptions {
			backlog = max(backlog, s.MsgBacklog) // the forwarders' one subscription
		}
		st.ByLevel[ls.Level] = backlog
		st.Pending += backlog
	}
	return st, nil
}

// consoleSchedules tells the console whether a delayed message still
// waits in the engine (wheel index or level record).
type consoleSchedules struct{ e *delay.Engine }

func (p consoleSchedules) Holds(ctx context.Context, uid string) (bool, error) {
	_, err := p.e.Get(ctx, uid)
	if errors.Is(err, delay.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// consoleSpool answers GET /stats/spool from the durable sender's spool.
type consoleSpool struct{ d *durable.Sender }

func (p consoleSpool) SpoolStats(context.Context) (consoleapi.SpoolStats, error) {
	h := p.d.Health()
	st := consoleapi.SpoolStats{Messages: int64(h.Spool.Depth), Bytes: h.Spool.DiskBytes}
	if !h.Spool.Oldest.IsZero() {
		o := h.Spool.Oldest.UTC()
		st.Oldest = &o
	}
	// The replayer empties the spool whenever a cluster takes messages.
	if h.Spool.Depth > 0 {
		st.Replaying = slices.ContainsFunc(h.Clusters, func(c durable.ClusterHealth) bool { return c.State != durable.Open })
	}
	return st, nil
}

// consoleClusters answers GET /stats/clusters from the circuit breakers.
type consoleClusters struct{ d *durable.Sender }

func (p consoleClusters) ClusterHealth(context.Context) ([]consoleapi.ClusterHealth, error) {
	h := p.d.Health()
	now := time.Now().UTC()
	out := make([]consoleapi.ClusterHealth, 0, len(h.Clusters))
	for i, c := range h.Clusters {
		role := "primary"
		if i > 0 {
			role = "disaster-recovery"
		}
		out = append(out, consoleapi.ClusterHealth{Name: c.Name, Role: role, Healthy: c.State == durable.Closed,
			Breaker: c.State.String(), CheckedAt: now})
	}
	return out, nil
}
