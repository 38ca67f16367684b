package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/apierr"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/group"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/metrics"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// Check is a readiness probe of one dependency; nil means reachable.
type Check func(ctx context.Context) error

// Options configure a Server. Sender is required; the others default as noted.
type Options struct {
	// Sender makes messages durable (a *PulsarSender, later wrapped by
	// retry, failover and spool).
	Sender produce.Sender
	// Scheduler handles delayLevel; nil answers 501 DELAY_LEVEL_UNAVAILABLE.
	Scheduler produce.Scheduler
	// Delay serves the delay API under /v1 (inspect, cancel, reschedule
	// delayed messages); nil leaves it out.
	Delay DelayEngine
	// Idempotency stores results by idempotency key; nil means every keyed
	// message is produced with duplicateRisk, as when Redis is down.
	Idempotency IdempotencyStore
	// Recorder receives lifecycle events; tracer.Nop{} when nil.
	Recorder tracer.Recorder

	// Apps that may call the data plane. DevMode serves every request as
	// app "dev" without a token and requires Apps to be empty.
	Apps    []App
	DevMode bool

	Limits         Limits        // DefaultLimits() when zero
	RequestTimeout time.Duration // deadline of one produce request; 10s
	// IdempotencyWait caps how long a retry waits for its key's first
	// attempt to finish; RequestTimeout/2 when 0.
	IdempotencyWait time.Duration
	PollInterval    time.Duration // how often a waiting retry checks its key; 20ms

	Node string // this sidecar in trace events

	// ReadyChecks are run by /readyz, by name.
	ReadyChecks map[string]Check
	// DegradedChecks are run by /readyz too, but one that fails only
	// makes the answer "degraded" (still 200) with its error as the
	// check's text: a part of the sidecar waits (the delay forwarders for
	// the broker) while produce is still served.
	DegradedChecks map[string]Check
	// Metrics records data-plane metrics; HTTPMetrics request counts and
	// latency. Either may be nil (Metrics are then made on a registry nobody
	// reads). Gatherer serves /metrics when set.
	Metrics     *Metrics
	HTTPMetrics *metrics.HTTP
	Gatherer    http.Handler

	// Mount adds routes beside the data plane (the app mounts the console
	// and the consume API here): root is the bare engine, for APIs that
	// authenticate themselves; v1 is /v1 behind the app-token check (see
	// AppFromContext and MayConsume).
	Mount func(root *gin.Engine, v1 *gin.RouterGroup)
	// Middleware runs first on every request, routed or not, before
	// recovery and metrics (the app's access log and request id).
	Middleware []gin.HandlerFunc

	Logger *slog.Logger     // slog.Default() when nil
	Now    func() time.Time // time.Now when nil
}

// Server is the HTTP data plane. It is an http.Handler; the caller runs the
// http.Server. Close waits for work that outlives requests.
type Server struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	auth    *authenticator
	engine  *gin.Engine
	rec     tracer.Recorder
	metrics *Metrics
	errw    *apierr.Writer

	draining atomic.Bool

	stragglers group.Group // outcomes that arrive after their request answered
}

var _ http.Handler = (*Server)(nil)

// New builds a Server. It fails on an invalid app configuration.
func New(opts Options) (*Server, error) {
	if opts.Sender == nil {
		return nil, errors.New("proxy: Options.Sender is required")
	}
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits()
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.IdempotencyWait <= 0 {
		opts.IdempotencyWait = opts.RequestTimeout / 2
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(metrics.OrDiscard(nil))
	}
	s := &Server{opts: opts, log: opts.Logger, now: opts.Now, rec: opts.Recorder, metrics: opts.Metrics}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "proxy")
	s.errw = errorWriter(s.log, s.metrics)
	if s.now == nil {
		s.now = time.Now
	}
	if s.rec == nil {
		s.rec = tracer.Nop{}
	}
	auth, err := newAuthenticator(opts.Apps, opts.DevMode, s.now)
	if err != nil {
		return nil, err
	}
	s.auth = auth
	s.engine = s.routes()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// SetDraining makes /readyz fail, so load balancers stop sending traffic
// while the listener drains. Requests are still served.
func (s *Server) SetDraining() { s.draining.Store(true) }

// Close waits until every message handed to the Sender has its outcome
// recorded (idempotency store, trace, metrics), or ctx ends. Call it after
// the HTTP server has stopped and the Sender has flushed. Idempotent.
func (s *Server) Close(ctx context.Context) error {
	if err := s.stragglers.Wait(ctx); err != nil {
		return fmt.Errorf("proxy: waiting for in-flight outcomes: %w", err)
	}
	return nil
}

// goStraggler runs f on a goroutine that Close waits for. After Close has
// begun (a request outlived the HTTP drain), f still runs but is not
// waited for.
func (s *Server) goStraggler(f func()) {
	if !s.stragglers.Go(f) {
		go f()
	}
}

func init() { gin.SetMode(gin.ReleaseMode) }

// Route patterns, also the route label of the HTTP metrics.
const (
	RouteProduce = "/v1/topics/:tenant/:namespace/:topic/messages"
	RouteHealthz = "/healthz"
	RouteReadyz  = "/readyz"
	RouteMetrics = "/metrics"
)

func (s *Server) routes() *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	_ = e.SetTrustedProxies(nil) // client IP is the peer address; X-Forwarded-For is not trusted
	e.Use(s.opts.Middleware...)
	if s.opts.HTTPMetrics != nil {
		e.Use(s.opts.HTTPMetrics.Middleware())
	}
	e.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, rec any) {
		s.fail(c, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error",
			Err: fmt.Errorf("panic: %v", rec)}, nil)
	}))
	e.NoRoute(func(c *gin.Context) {
		s.fail(c, errorf(http.StatusNotFound, CodeNotFound, "no route %s %s; produce with POST /v1/topics/{tenant}/{namespace}/{topic}/messages",
			c.Request.Method, truncate(c.Request.URL.Path, 200)), nil)
	})
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method %s is not allowed here", c.Request.Method), nil)
	})
	e.GET(RouteHealthz, s.healthz)
	e.GET(RouteReadyz, s.readyz)
	if s.opts.Gatherer != nil {
		e.GET(RouteMetrics, gin.WrapH(s.opts.Gatherer))
	}
	v1 := e.Group("/v1", s.authenticate)
	v1.POST("/topics/:tenant/:namespace/:topic/messages", s.handleProduce)
	if s.opts.Delay != nil {
		s.mountDelay(v1)
	}
	if s.opts.Mount != nil {
		s.opts.Mount(e, v1)
	}
	return e
}

// Fail answers c with err in the data plane's error format (and counts
// it), for routes added through Options.Mount. *Error values keep their
// status and code; anything else is a 500 that hides its cause.
func (s *Server) Fail(c *gin.Context, err error) { s.fail(c, err, nil) }

// AppFromContext is the app that the /v1 token check authenticated, for
// routes added through Options.Mount.
func AppFromContext(c *gin.Context) (string, bool) {
	p, ok := c.Get(principalKey)
	if !ok {
		return "", false
	}
	pr, ok := p.(*principal)
	if !ok {
		return "", false
	}
	return pr.name, true
}

// MayProduce reports whether the authenticated app of c may produce to
// the topic.
func MayProduce(c *gin.Context, tenant, namespace, topic string) bool {
	p, ok := c.Get(principalKey)
	if !ok {
		return false
	}
	pr, ok := p.(*principal)
	return ok && pr.mayProduce(tenant, namespace, topic)
}

// MayConsume reports whether the authenticated app of c may consume from
// the topic.
func MayConsume(c *gin.Context, tenant, namespace, topic string) bool {
	p, ok := c.Get(principalKey)
	if !ok {
		return false
	}
	pr, ok := p.(*principal)
	return ok && pr.mayConsume(tenant, namespace, topic)
}

// Authenticate checks a request's bearer token (or, in dev mode, accepts
// it as the dev app) and tells whether the app may read the console. It is
// for APIs mounted on the root engine that authenticate themselves.
func (s *Server) Authenticate(r *http.Request) (app string, console bool, err error) {
	p, err := s.auth.authenticate(r)
	if err != nil {
		return "", false, err
	}
	return p.name, p.console, nil
}

// fail is the one place that turns an error into an HTTP answer.
func (s *Server) fail(c *gin.Context, err error, results []Result) {
	if results != nil {
		s.errw.WriteResults(c, err, results)
		return
	}
	s.errw.Write(c, err)
}

const principalKey = "psc.principal"

func (s *Server) authenticate(c *gin.Context) {
	p, err := s.auth.authenticate(c.Request)
	if err != nil {
		s.fail(c, err, nil)
		return
	}
	c.Set(principalKey, p)
	c.Next()
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz runs every check concurrently with a 2 s cap and answers 200 only
// when all ReadyChecks pass and the server is not draining; a failing
// DegradedCheck makes the status "degraded", still 200.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	type res struct {
		name     string
		degraded bool
		err      error
	}
	n := len(s.opts.ReadyChecks) + len(s.opts.DegradedChecks)
	ch := make(chan res, n)
	for name, check := range s.opts.ReadyChecks {
		go func() { ch <- res{name, false, check(ctx)} }()
	}
	for name, check := range s.opts.DegradedChecks {
		go func() { ch <- res{name, true, check(ctx)} }()
	}
	checks := make(map[string]string, n)
	ok, degraded := true, false
	for range n {
		r := <-ch
		switch {
		case r.err == nil:
			checks[r.name] = "ok"
		case r.degraded:
			degraded = true
			checks[r.name] = r.err.Error()
		default:
			ok = false
			checks[r.name] = "unreachable: " + r.err.Error()
		}
	}
	status, code := "ready", http.StatusOK
	if degraded {
		status = "degraded"
	}
	if s.draining.Load() {
		status, code, ok = "draining", http.StatusServiceUnavailable, false
	}
	if !ok && code == http.StatusOK {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	c.JSON(code, gin.H{"status": status, "checks": checks})
}
