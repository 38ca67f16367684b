package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/consume"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/pulsaradm"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// registryReloadInterval bounds how late a replica sees another one's
// registry change (a revoked token, a new app): docs/adr/100-registry.md.
const registryReloadInterval = time.Second

// liveRegistry is the registry in Redis (issue 15) and what follows it:
// the data plane's authenticator gets every new snapshot's apps.
type liveRegistry struct {
	reg *consoleapi.RedisRegistry

	mu    sync.Mutex
	proxy *proxy.Server // nil until the data plane is built
	log   func(msg string, args ...any)
	// known creates an app's per-app series at zero (proxy.Metrics.KnownApps).
	known func(apps ...string)
	// open: the process started with no app anywhere (the embedded dev
	// mode); the console stays open until the next start.
	open bool
}

// startRegistry loads the registry from Redis, bootstrapping it from the
// configured apps when Redis has none, and starts its reload loop. It
// runs before the data plane, which it then feeds (attachProxy).
func (a *App) startRegistry(ctx context.Context) error {
	lr := &liveRegistry{log: a.log.Error, known: a.proxyMetrics.KnownApps}
	opts := consoleapi.RedisRegistryOptions{
		Client:         a.rdb,
		Prefix:         a.registryPrefix(),
		Bootstrap:      a.registryBootstrap(),
		ReloadInterval: registryReloadInterval,
		Timeout:        a.cfg.Redis.Timeout,
		Logger:         a.log,
		OnChange:       lr.apply,
	}
	if a.consume != nil {
		opts.Subscriptions = consoleRegistry{subs: a.consume.Registry()}
		opts.SubscriptionWriter = consoleSubscriptions{a.consume}
	}
	adm, err := a.pulsarAdmin()
	if err != nil {
		return err
	}
	if adm != nil {
		opts.Namespaces = namespaceCreator{adm: adm, cluster: a.cfg.ClusterName()}
	}
	reg, err := consoleapi.NewRedisRegistry(opts)
	if err != nil {
		return fmt.Errorf("app: registry: %w", err)
	}
	if err := reg.Start(ctx); err != nil {
		return fmt.Errorf("app: registry: %w", err)
	}
	lr.reg = reg
	lr.open = len(a.cfg.Apps) == 0 && len(reg.Snapshot().Doc.Apps) == 0
	a.registry = lr
	a.stops.Push("registry reload", func(context.Context) error {
		reg.Close()
		return nil
	})
	return nil
}

// registryBootstrap is what the registry starts with when Redis has none:
// the configured apps, each with its configured token (id "config").
func (a *App) registryBootstrap() consoleapi.RegistryDoc {
	now := time.Now().UTC()
	var doc consoleapi.RegistryDoc
	for _, ca := range a.cfg.Apps {
		app := consoleapi.App{Name: ca.Name, Permissions: consoleapi.Permissions{
			Produce: nonNil(ca.Produce), Consume: nonNil(ca.Consume), Console: ca.Console}}
		if ca.Console {
			app.ConsoleRole = a.configuredRole(ca.ConsoleRole)
		}
		if ca.RateLimit.MessagesPerSecond > 0 {
			app.RateLimit = &consoleapi.RateLimit{MessagesPerSecond: ca.RateLimit.MessagesPerSecond, Burst: ca.RateLimit.Burst}
		}
		doc.Apps = append(doc.Apps, consoleapi.StoredApp{App: app,
			Secrets: []consoleapi.StoredToken{{ID: "config", SHA256: ca.TokenSHA256, CreatedAt: now}}})
	}
	return doc
}

func (a *App) configuredRole(s string) consoleapi.Role {
	if r, ok := consoleapi.ParseRole(s); ok {
		return r
	}
	return consoleapi.RoleViewer
}

// proxyApps are a snapshot's apps as the data plane authenticates them.
func proxyApps(s *consoleapi.RegistrySnapshot) []proxy.App {
	apps := make([]proxy.App, 0, len(s.Doc.Apps))
	for _, sa := range s.Doc.Apps {
		pa := proxy.App{Name: sa.Name, Produce: sa.Permissions.Produce, Consume: sa.Permissions.Consume,
			Console: sa.Permissions.Console}
		if rl := sa.RateLimit; rl != nil {
			pa.RatePerSecond, pa.Burst = rl.MessagesPerSecond, rl.Burst
		}
		for _, t := range sa.Secrets {
			tok := proxy.Token{SHA256: t.SHA256}
			if t.ExpiresAt != nil {
				tok.Expires = *t.ExpiresAt
			}
			pa.Tokens = append(pa.Tokens, tok)
		}
		apps = append(apps, pa)
	}
	return apps
}

// apply hands a new snapshot to the data plane.
func (lr *liveRegistry) apply(s *consoleapi.RegistrySnapshot) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.proxy == nil {
		return
	}
	apps := proxyApps(s)
	for _, pa := range apps {
		lr.known(pa.Name)
	}
	if err := lr.proxy.SetApps(apps); err != nil {
		// The registry's writes are validated: only a hand-edited document
		// gets here. The data plane keeps the apps it had.
		lr.log("the registry's apps were refused by the data plane; it keeps the previous ones", "version", s.Version, "err", err)
	}
}

// attachProxy makes the data plane follow the registry from now on.
func (lr *liveRegistry) attachProxy(p *proxy.Server) error {
	lr.mu.Lock()
	lr.proxy = p
	lr.mu.Unlock()
	apps := proxyApps(lr.reg.Snapshot())
	for _, pa := range apps {
		lr.known(pa.Name)
	}
	return p.SetApps(apps)
}

// role is an app's console role in the live registry (viewer when unset).
func (lr *liveRegistry) role(app string) consoleapi.Role {
	if sa, ok := lr.reg.Snapshot().App(app); ok && sa.ConsoleRole != "" {
		return sa.ConsoleRole
	}
	return consoleapi.RoleViewer
}

// consoleSubscriptions registers subscriptions from the console through
// the consume service, as its PUT and DELETE do.
type consoleSubscriptions struct{ svc *consume.Service }

func (w consoleSubscriptions) ref(topic, name string) (consume.SubscriptionRef, error) {
	tr, err := consume.ParseTopicName(topic)
	if err != nil {
		return consume.SubscriptionRef{}, &consoleapi.Error{Status: http.StatusBadRequest, Code: consoleapi.CodeInvalidTopic,
			Message: "the consume API registers subscriptions on persistent topics only"}
	}
	return consume.SubscriptionRef{Tenant: tr.Tenant, Namespace: tr.Namespace, Topic: tr.Topic, Subscription: name}, nil
}

func (w consoleSubscriptions) PutSubscription(ctx context.Context, caller string, s consoleapi.Subscription, o consoleapi.SubscriptionOptions) (consoleapi.Subscription, *consoleapi.Subscription, error) {
	ref, err := w.ref(s.Topic, s.Name)
	if err != nil {
		return consoleapi.Subscription{}, nil, err
	}
	var before *consoleapi.Subscription
	old, err := w.svc.GetSubscription(ctx, ref)
	switch {
	case err == nil:
		b := consoleSubscription(old)
		before = &b
	case consume.AsError(err).Code != consume.CodeSubscriptionNotFound:
		return consoleapi.Subscription{}, nil, subscriptionError(err)
	}
	spec := consume.SubscriptionSpec{TagFilter: s.TagFilter, Type: s.Type, ExpectedConsumers: s.ExpectedConsumers,
		MaxDeliveries: o.MaxDeliveries, DeadLetterTopic: o.DeadLetterTopic, InitialPosition: o.InitialPosition}
	sub, _, err := w.svc.PutSubscription(ctx, ref, spec, consume.Caller{App: caller})
	if err != nil {
		return consoleapi.Subscription{}, nil, subscriptionError(err)
	}
	return consoleSubscription(sub), before, nil
}

func (w consoleSubscriptions) DeleteSubscription(ctx context.Context, topic, name string) (consoleapi.Subscription, error) {
	ref, err := w.ref(topic, name)
	if err != nil {
		return consoleapi.Subscription{}, err
	}
	old, err := w.svc.GetSubscription(ctx, ref)
	if err != nil {
		return consoleapi.Subscription{}, subscriptionError(err)
	}
	if err := w.svc.DeleteSubscription(ctx, ref); err != nil {
		return consoleapi.Subscription{}, subscriptionError(err)
	}
	return consoleSubscription(old), nil
}

func consoleSubscription(s *consume.Subscription) consoleapi.Subscription {
	return consoleapi.Subscription{Topic: s.Ref().TopicName(), Name: s.Subscription, TagFilter: s.TagFilter,
		Type: pulsarSubscriptionType(s.Type), ExpectedConsumers: slices.Clone(nonNil(s.ExpectedConsumers))}
}

// subscriptionError turns the consume service's answers into the
// console's: the caller's mistakes are 400 INVALID_SUBSCRIPTION, an
// unknown one 404, a broker failure 503 BROKER_UNAVAILABLE.
func subscriptionError(err error) error {
	e := consume.AsError(err)
	switch {
	case e.Code == consume.CodeSubscriptionNotFound:
		return fmt.Errorf("%w: %s", consoleapi.ErrSubscriptionNotFound, e.Message)
	case e.Status == http.StatusBadRequest:
		return &consoleapi.Error{Status: http.StatusBadRequest, Code: consoleapi.CodeInvalidSubscription, Message: e.Message}
	case e.Code == consume.CodeBrokerUnavailable:
		return &consoleapi.Error{Status: http.StatusServiceUnavailable, Code: consoleapi.CodeBrokerUnavailable, Message: e.Message, Err: err}
	}
	return err
}

// namespaceCreator creates a topic's tenant (allowed on this cluster) and
// namespace through the admin API; ones that exist are left as they are.
type namespaceCreator struct {
	adm     *pulsaradm.Client
	cluster string
}

func (n namespaceCreator) EnsureNamespace(ctx context.Context, tenant, namespace string) error {
	done := make(chan error, 1)
	go func() {
		err := n.adm.Admin().Tenants().Create(utils.TenantData{Name: tenant, AllowedClusters: []string{n.cluster}})
		if err == nil || isConflict(err) {
			err = n.adm.Admin().Namespaces().CreateNamespace(tenant + "/" + namespace)
			if isConflict(err) {
				err = nil
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func isConflict(err error) bool {
	var re rest.Error
	if errors.As(err, &re) {
		return re.Code == http.StatusConflict
	}
	var rp *rest.Error
	return errors.As(err, &rp) && rp.Code == http.StatusConflict
}
