// Package app wires the sidecar together: configuration in, a running
// HTTP data plane out. cmd/pulsar-sidecar is a thin main over Run; tests
// embed the whole product with New, Start on 127.0.0.1:0, and Stop.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/consume"
	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/durable"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/accesslog"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/embedredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/group"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/metrics"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/pulsaradm"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/version"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/openapi"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Option adjusts how an App is built, for embedding and tests.
type Option func(*App)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(a *App) { a.log = l } }

// WithRecorder sends lifecycle events to r instead of the log. The caller
// owns r (starts and closes it).
func WithRecorder(r tracer.Recorder) Option { return func(a *App) { a.rec = r } }

// App is one sidecar: HTTP data plane, producer pool, Pulsar and Redis
// clients, and in embedded mode the in-process broker and Redis.
type App struct {
	cfg config.Config
	log *slog.Logger
	rec tracer.Recorder
	reg *prometheus.Registry

	broker *minipulsar.Server // embedded mode only
	mredis *embedredis.Server // embedded Redis only
	// localIdem: the embedded mode's idempotency store (embedded.go).
	localIdem *proxy.LocalIdempotency
	client    pulsar.Client
	// consumerClient serves the consume service and the delay engine.
	consumerClient pulsar.Client
	rdb            redis.UniversalClient
	pool           *produce.Pool
	proxy          *proxy.Server
	// proxyMetrics count the errors of the consume API and the console
	// too (psc_http_errors_total).
	proxyMetrics *proxy.Metrics
	httpSrv      *http.Server
	ln           net.Listener

	// connections and listeners of issue 16 (pulsarauth.go, listeners.go,
	// secrets.go)
	primaryConn, drConn *pulsarConn
	mgmtSrv             *http.Server
	mgmtLn              net.Listener
	certs               *certReloader
	reloadSig           <-chan os.Signal
	reloadStop          context.CancelFunc
	reloadDone          chan struct{}

	delay   *delay.Engine    // delay.go
	consume *consume.Service // consume.go
	// consumeRDB is the consume service's own Redis client (consume.go).
	consumeRDB redis.UniversalClient

	// durability (durable.go): the disaster-recovery cluster and the spool
	durable  *durable.Sender
	drClient pulsar.Client
	drPool   *produce.Pool
	// drConsumerClient is the disaster-recovery cluster's client for
	// consumers, apart from its producers' as consumerClient is.
	drConsumerClient pulsar.Client

	// the lifecycle trace and the console (trace.go)
	traceStore    tracer.Store
	pipeline      *tracer.Pipeline
	console       *consoleapi.API
	registry      *liveRegistry // apps, tokens and topics in Redis (registry.go)
	consoleAdmin  *consoleapi.PulsarAdmin
	scheduleGrace time.Duration // the console's; its default when 0 (tests shorten it)
	retentionStop context.CancelFunc
	retentionDone chan struct{}

	pulsarURL, redisAddr string
	serveErr             chan error

	startOnce sync.Once
	started   bool
	stopOnce  sync.Once
	stopErr   error
	stops     group.Stops // pushed as components start, drained in reverse by Stop
	admin     *pulsaradm.Client
}

// New validates cfg and returns an App that is not started.
func New(cfg config.Config, opts ...Option) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, serveErr: make(chan error, 1)}
	for _, o := range opts {
		o(a)
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	return a, nil
}

// logRecorder logs lifecycle events at level, or discards them when the
// logger would drop that level anyway (LogRecorder builds its attributes
// before the handler decides, which costs on every message).
func logRecorder(level string, log *slog.Logger) tracer.Recorder {
	var l slog.Level
	if level == "off" || l.UnmarshalText([]byte(level)) != nil || !log.Enabled(context.Background(), l) {
		return tracer.Nop{}
	}
	return tracer.LogRecorder{Logger: log.With("component", "trace"), Level: l}
}

// Start brings everything up: the embedded broker and Redis when no URL is
// configured, the clients, the producer pool, and the HTTP listener. On
// error, whatever started is stopped again. Start may be called once.
func (a *App) Start(ctx context.Context) error {
	err := errors.New("app: Start called twice")
	a.startOnce.Do(func() {
		a.started = true
		err = a.start(ctx)
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
			defer cancel()
			_ = a.Stop(stopCtx)
		}
	})
	return err
}

func (a *App) start(ctx context.Context) error {
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{}) })
	cfg := &a.cfg
	if err := a.startEmbedded(); err != nil {
		return err
	}
	// Early, so that it closes late: after every sender whose results it records.
	if err := a.startIdempotency(ctx); err != nil {
		return err
	}
	if !cfg.EmbeddedPulsar() {
		a.pulsarURL = cfg.Pulsar.URL
	}
	if !cfg.EmbeddedRedis() {
		a.redisAddr = cfg.Redis.AddrList()[0]
	}

	a.reg = metrics.NewRegistry()
	// The pipeline flushes what the components recorded, so it stops
	// after them; stopTrace stops whatever part of it started.
	a.stops.Push("trace", a.stopTraceHook)
	if err := a.startTrace(ctx); err != nil {
		return err
	}
	if a.rec == nil {
		a.rec = logRecorder(cfg.Trace.LogLevel, a.log)
	}
	copts, err := a.primaryOptions()
	if err != nil {
		return err
	}
	client, err := pulsar.NewClient(copts)
	if err != nil {
		return fmt.Errorf("app: pulsar client for %s: %w", a.pulsarURL, err)
	}
	a.client = client
	a.stops.Push("pulsar client", closeClient(client))
	// Consumers get a client, and so connections, of their own: with
	// pulsar-client-go v0.19 a SEND that crosses a broker's CLOSE_PRODUCER
	// (a topic unload) makes the broker close the connection, and a
	// consumer on that connection then re-subscribes twice and strands the
	// messages in its receive queue until it next reconnects (ADR 060).
	if a.consumerClient, err = pulsar.NewClient(copts); err != nil {
		return fmt.Errorf("app: pulsar consumer client for %s: %w", a.pulsarURL, err)
	}
	a.stops.Push("pulsar consumer client", closeClient(a.consumerClient))

	if a.rdb, err = a.newRedis(nil); err != nil {
		return err
	}
	a.stops.Push("redis client", func(context.Context) error { return a.rdb.Close() })

	pm := proxy.NewMetrics(a.reg)
	pm.KnownApps(a.appNames()...)
	a.proxyMetrics = pm
	poolm := produce.NewPoolMetrics(a.reg)
	// Outcomes that outlive their request are recorded once the producers
	// have flushed: the data plane's wait stops after the pool's.
	a.stops.Push("outcomes", func(ctx context.Context) error {
		if a.proxy == nil {
			return nil
		}
		return a.proxy.Close(ctx)
	})
	a.pool = produce.NewPool(client, a.poolOptions(poolm))
	a.pool.Start()
	a.stops.Push("producers", a.pool.Close)
	a.pushDurableStops()
	if err := a.startDurable(poolm); err != nil {
		return err
	}
	// Before the durable sender and the producers: the forwarders forward
	// through the durable sender, level messages go through the pool.
	a.stops.Push("delay engine", func(ctx context.Context) error {
		if a.delay == nil {
			return nil
		}
		var err error
		if werr := group.WaitContext(ctx, func() { err = a.delay.Close() }); werr != nil {
			return werr
		}
		return err
	})
	if err := a.startDelay(ctx); err != nil {
		return err
	}
	// The service hands what this replica holds back to the broker.
	a.stops.Push("consume redis client", func(context.Context) error {
		if a.consume == nil {
			return nil
		}
		return a.consumeRDB.Close()
	})
	a.stops.Push("consume service", func(ctx context.Context) error {
		if a.consume == nil {
			return nil
		}
		return a.consume.Close(ctx)
	})
	if err := a.startConsume(ctx); err != nil {
		return err
	}
	// The registry (apps, tokens, topics) lives in Redis, bootstrapped from
	// the configured apps (registry.go); the data plane follows it.
	if err := a.startRegistry(ctx); err != nil {
		return err
	}
	if a.console, err = a.buildConsole(); err != nil {
		return err
	}

	a.proxy, err = proxy.New(proxy.Options{
		Sender:      a.durable,
		Scheduler:   proxy.DelayScheduler{Engine: a.delay, Cluster: cfg.ClusterName()},
		Delay:       a.delay,
		Idempotency: a.idempotency(),
		Recorder:    a.rec,
		// Apps come from the registry (attachProxy below); a sidecar with no
		// configured app may serve the dev app while the registry has none.
		DevMode: len(cfg.Apps) == 0,
		Limits: proxy.Limits{
			MaxPayloadBytes:        int64(cfg.Limits.MaxPayloadBytes),
			MaxRequestBytes:        int64(cfg.Limits.MaxRequestBytes),
			MaxMessages:            cfg.Limits.MaxMessagesPerRequest,
			MaxKeyBytes:            cfg.Limits.MaxKeyBytes,
			MaxTags:                cfg.Limits.MaxTags,
			MaxProperties:          cfg.Limits.MaxProperties,
			MaxPropertyKeyBytes:    cfg.Limits.MaxPropertyKeyBytes,
			MaxPropertyValueBytes:  cfg.Limits.MaxPropertyValueBytes,
			MaxIdempotencyKeyBytes: cfg.Limits.MaxIdempotencyKeyBytes,
			MaxDelay:               cfg.Limits.MaxDelay,
		},
		RequestTimeout: cfg.HTTP.RequestTimeout,
		PollInterval:   cfg.Idempotency.PollInterval,
		Node:           cfg.Node,
		ReadyChecks: map[string]proxy.Check{
			// Ready while some cluster or the spool takes messages: a pod
			// whose primary is down still serves (failover, spooled).
			"durability": a.durable.Ready,
			"redis":      func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() },
		},
		DegradedChecks: a.degradedChecks(),
		Metrics:        pm,
		HTTPMetrics:    metrics.NewHTTP(a.reg),
		Gatherer:       a.dataPlaneMetrics(),
		Mount:          a.mount,
		Middleware: []gin.HandlerFunc{accesslog.Middleware(accesslog.Options{
			Logger: a.log, Disabled: !cfg.Log.Access, App: requestApp})},
		Logger: a.log,
	})
	if err != nil {
		return err
	}
	if err := a.registry.attachProxy(a.proxy); err != nil {
		return fmt.Errorf("app: the registry's apps: %w", err)
	}
	// First to stop: readiness goes red, the listener stops and in-flight
	// requests finish; then the management listener (probes and scrapes
	// see the drain) and the secret-file reload loop.
	a.stops.Push("http", func(ctx context.Context) error {
		a.proxy.SetDraining()
		var errs []error
		if a.httpSrv != nil {
			if err := a.httpSrv.Shutdown(ctx); err != nil {
				_ = a.httpSrv.Close()
				errs = append(errs, err)
			}
		}
		a.stopManagement(ctx, func(name string, f func() error) {
			if err := f(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		})
		a.stopReload()
		return errors.Join(errs...)
	})

	if err := a.listen(ctx); err != nil {
		return err
	}
	a.startReload()
	a.logStarted()
	return nil
}

// degradedChecks are reported by /readyz without making the sidecar
// unready: produce is served by failover or the spool while the primary is
// down (issue 12), and the parts that need the broker say so here.
func (a *App) degradedChecks() map[string]proxy.Check {
	checks := map[string]proxy.Check{}
	if a.delay != nil {
		checks["delay"] = a.delay.Ready
	}
	a.addTLSChecks(checks)
	return checks
}

// requestApp names the caller of a request in the access log: the app the
// /v1 token check or the console let in.
func requestApp(c *gin.Context) string {
	if app, ok := proxy.AppFromContext(c); ok {
		return app
	}
	if p, ok := consoleapi.PrincipalFrom(c); ok {
		return p.App
	}
	return ""
}

// appNames are the apps requests can authenticate as: the configured ones,
// or the dev app in protected mode.
func (a *App) appNames() []string {
	if len(a.cfg.Apps) == 0 {
		return []string{proxy.DevApp}
	}
	names := make([]string, len(a.cfg.Apps))
	for i, ca := range a.cfg.Apps {
		names[i] = ca.Name
	}
	return names
}

// mount adds the APIs that live beside the produce API.
func (a *App) mount(root *gin.Engine, v1 *gin.RouterGroup) {
	root.GET(openapi.Path, gin.WrapH(openapi.Handler()))
	if a.console != nil {
		a.console.Register(root.Group(consoleapi.Prefix))
		mountConsoleWeb(root)
	}
	if a.consume != nil {
		a.mountConsume(v1)
	}
}

// startEmbedded starts minipulsar and miniredis when no URL is configured.
func (a *App) startEmbedded() error {
	cfg := &a.cfg
	if cfg.EmbeddedPulsar() {
		b, err := startBroker(cfg, a.log)
		if err != nil {
			return err
		}
		a.broker = b
		a.stops.Push("embedded broker", func(context.Context) error { return b.Close() })
		a.pulsarURL = b.ServiceURL()
	}
	if cfg.EmbeddedRedis() {
		m, err := startRedis(cfg, a.log)
		if err != nil {
			return err
		}
		a.mredis = m
		// Writes the last snapshot: every client is closed by then.
		a.stops.Push("embedded redis", func(context.Context) error { return m.Close() })
		a.redisAddr = m.Addr()
	}
	return nil
}

func (a *App) logStarted() {
	mode := "production"
	if a.broker != nil {
		mode = "embedded"
	}
	apps := len(a.registry.reg.Snapshot().Doc.Apps) // the registry's, not only the configured ones
	auth := fmt.Sprintf("%d apps in the registry, bearer tokens required", apps)
	authHeader := ` -H "Authorization: Bearer $TOKEN"`
	if len(a.cfg.Apps) == 0 && apps == 0 {
		auth = `protected mode: loopback only, every request is app "dev", no token`
		authHeader = ""
	}
	a.log.Info("pulsar-sidecar started", "version", version.Get().Version,
		"mode", mode, "listen", a.scheme()+"://"+a.Addr(), "management", a.ManagementAddr(), "pulsar", a.pulsarURL, "redis", a.redisDescription(),
		"embeddedRedis", a.mredis != nil, "cluster", a.cfg.ClusterName(), "auth", auth, "node", a.cfg.Node)
	a.log.Info("try it: curl -sS -X POST " + a.scheme() + "://" + a.Addr() + "/v1/topics/public/default/demo/messages" + authHeader +
		` -H "Content-Type: application/json" -d '{"messages":[{"payload":"hello","tags":["PAY_1001"]}]}'`)
}

// Addr is the HTTP listener's address (host:port), useful with port 0.
func (a *App) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// PulsarURL is the broker the sidecar produces to: the configured one or
// the embedded broker's.
func (a *App) PulsarURL() string { return a.pulsarURL }

// RedisAddr is the Redis the sidecar uses (the first configured address:
// with Sentinel a sentinel, with Cluster a seed).
func (a *App) RedisAddr() string { return a.redisAddr }

// Done reports the HTTP server's unexpected end (nil after Stop).
func (a *App) Done() <-chan error { return a.serveErr }

// Stop runs the stop hooks the components pushed as they started, last
// started first, under ctx's deadline capped by shutdownTimeout: readiness
// goes red, the listener stops and in-flight requests finish, the consume
// service hands its messages back, the delay engine and the durable sender
// stop, producers flush and close, late outcomes are recorded, then the
// Pulsar and Redis clients close, the trace pipeline flushes, then the
// embedded Redis and broker. A step that fails or runs out of time is
// logged and the rest still run.
// Stop is idempotent: later calls return the first call's result.
func (a *App) Stop(ctx context.Context) error {
	a.stopOnce.Do(func() { a.stopErr = a.stop(ctx) })
	return a.stopErr
}

func (a *App) stop(ctx context.Context) error {
	start := time.Now()
	n := a.stops.Len()
	err := a.stops.Drain(ctx, a.cfg.ShutdownTimeout, a.log)
	a.log.Info("pulsar-sidecar stopped", "took", time.Since(start).Round(time.Millisecond), "steps", n,
		"errors", len(unjoin(err)))
	return err
}

// unjoin lists the errors errors.Join put together.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// closeClient is the stop hook of a Pulsar client: Close, given up on
// when ctx ends.
func closeClient(c pulsar.Client) func(context.Context) error {
	return func(ctx context.Context) error { return group.WaitContext(ctx, c.Close) }
}

// stopTraceHook is stopTrace as a stop hook: every failed step named.
func (a *App) stopTraceHook(ctx context.Context) error {
	var errs []error
	a.stopTrace(ctx, func(name string, f func() error) {
		if err := f(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

// Run starts an App and stops it when ctx ends, with cfg.ShutdownTimeout
// for the shutdown. It returns early if the HTTP server fails.
func Run(ctx context.Context, cfg config.Config, opts ...Option) error {
	a, err := New(cfg, opts...)
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-a.Done():
	}
	stopErr := a.Stop(context.Background())
	return errors.Join(serveErr, stopErr)
}

var redisLogOnce sync.Once

// redisLogger sends go-redis's own log lines (a process-wide setting) to
// the default slog logger instead of the standard log package.
type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().WarnContext(ctx, fmt.Sprintf(format, v...), "component", "redis-client")
}
