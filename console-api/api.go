package consoleapi

import (
	"context"
	_ "embed" // the OpenAPI document
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Prefix is where the app mounts the console.
const Prefix = "/console/v1"

// Options configures the console. Store is required; everything else is
// optional, and what is missing is answered as null with a note, never
// with a made-up value.
type Options struct {
	// Store answers the trace queries.
	Store tracer.Store
	// Broker is the Pulsar cluster asked for message content, cursors and
	// stats (PulsarAdmin). ClusterBrokers overrides it per cluster name, as
	// trace events name clusters (Event.Cluster), e.g. for the disaster-
	// recovery cluster.
	Broker         Broker
	ClusterBrokers map[string]Broker
	// Registry lists apps, topics and expected subscriptions; an empty
	// registry when nil.
	Registry Registry
	// Authorizer lets callers in. Without one every request is refused,
	// unless Open is set (the embedded dev mode on a loopback listener).
	Authorizer Authorizer
	Open       bool
	// Providers answer the stats other components own.
	Providers Providers
	// Ops are the operations and the web page's extra stats (ops.go).
	Ops Ops

	// MaxPayloadBytes caps the payload returned by message lookups (the
	// maxBytes parameter may ask for less). 64 KiB.
	MaxPayloadBytes int
	// MaxTimelineEvents caps the events a message view embeds; the rest is
	// paged through .../timeline. 1000.
	MaxTimelineEvents int
	// Timeout bounds each call to the store, the broker and providers. 10s.
	Timeout time.Duration
	// ScheduleGrace is how long after its scheduled event a delayed
	// message that the delay engine does not hold is still scheduled (its
	// fired or cancelled event may be on its way); then it is
	// schedule_lost. 10s.
	ScheduleGrace time.Duration

	// OnError, when set, is called with every error answer's status and
	// code (the app counts them in psc_http_errors_total). It runs on the
	// request's goroutine and must not block.
	OnError func(status int, code string)

	Logger *slog.Logger // slog.Default() when nil
}

// API is the console. Create it with New and mount it with Register (or
// serve Handler).
type API struct {
	opts Options
	log  *slog.Logger
}

// ErrNoStore is returned by New without a Store.
var ErrNoStore = errors.New("consoleapi: Options.Store is required")

// New checks opts and builds the console. It starts nothing.
func New(opts Options) (*API, error) {
	if opts.Store == nil {
		return nil, ErrNoStore
	}
	if opts.Registry == nil {
		opts.Registry = &StaticRegistry{}
	}
	if opts.MaxPayloadBytes <= 0 {
		opts.MaxPayloadBytes = 64 << 10
	}
	if opts.MaxTimelineEvents <= 0 {
		opts.MaxTimelineEvents = 1000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.ScheduleGrace <= 0 {
		opts.ScheduleGrace = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &API{opts: opts, log: opts.Logger.With("component", "console")}
	if !opts.Open && opts.Authorizer == nil {
		a.log.Warn("console has no authorizer: every request will be refused")
	}
	return a, nil
}

// Route is one console endpoint, relative to Prefix, in gin's syntax, and
// the query parameters it takes (any other is refused with
// INVALID_PARAMETER, so a typo cannot widen a search silently).
type Route struct {
	Method, Path string
	Params       []string
	multi        []string // parameters that may repeat
	handler      func(a *API, c *gin.Context) error
	Public       bool // served without authentication
}

var (
	searchParams   = []string{"topic", "from", "to", "key", "tag", "app", "status", "clientIp", "subscription", "uid", "messageId", "limit", "cursor", "view", "events"}
	viewParams     = []string{"content", "maxBytes"}
	timelineParams = []string{"limit", "cursor"}
)

// routes is the one list of endpoints: Register mounts it and the OpenAPI
// test compares it with openapi.yaml. The operations (ops*.go) join it in
// their init.
var routes = []Route{
	{Method: http.MethodGet, Path: "/messages/:uid", Params: viewParams, handler: (*API).getMessage},
	{Method: http.MethodGet, Path: "/messages/:uid/timeline", Params: timelineParams, handler: (*API).getTimeline},
	{Method: http.MethodGet, Path: "/messages/:uid/consumption", handler: (*API).getConsumption},
	{Method: http.MethodGet, Path: "/message-ids/:messageId", Params: append([]string{"topic"}, viewParams...), handler: (*API).getByMessageID},
	{Method: http.MethodGet, Path: "/search", Params: searchParams, multi: []string{"status"}, handler: (*API).search},
	{Method: http.MethodGet, Path: "/registry/apps", handler: (*API).listApps},
	{Method: http.MethodGet, Path: "/registry/apps/:name", handler: (*API).getApp},
	{Method: http.MethodGet, Path: "/registry/topics", handler: (*API).listTopics},
	{Method: http.MethodGet, Path: "/registry/subscriptions", Params: []string{"topic"}, handler: (*API).listSubscriptions},
	{Method: http.MethodGet, Path: "/stats/backlog", Params: []string{"topic", "cluster"}, handler: (*API).statsBacklog},
	{Method: http.MethodGet, Path: "/stats/tag-backlog", Params: []string{"topic", "subscription"}, handler: (*API).statsTagBacklog},
	{Method: http.MethodGet, Path: "/stats/delay", handler: (*API).statsDelay},
	{Method: http.MethodGet, Path: "/stats/spool", handler: (*API).statsSpool},
	{Method: http.MethodGet, Path: "/stats/clusters", handler: (*API).statsClusters},
	{Method: http.MethodGet, Path: "/openapi.yaml", handler: (*API).openAPI, Public: true},
}

// Routes lists the console's endpoints, relative to Prefix.
func Routes() []Route {
	out := make([]Route, len(routes))
	copy(out, routes)
	return out
}

// Register mounts the console on r, which the app has rooted at Prefix:
//
//	api.Register(engine.Group(consoleapi.Prefix))
//
// SetTagBacklog plugs in the per-tag backlog provider after New, for a
// component built after the console (the consume engine). Call it before
// the API serves requests.
func (a *API) SetTagBacklog(p TagBacklogProvider) { a.opts.Providers.TagBacklog = p }

// Unknown paths and methods under the prefix are the engine's to answer;
// Handler answers them with the console's JSON errors.
func (a *API) Register(r gin.IRouter) {
	for _, rt := range routes {
		serve := func(c *gin.Context) {
			err := checkParams(c.Request.URL.Query(), rt.Params, rt.multi...)
			if err == nil {
				err = rt.handler(a, c)
			}
			if err != nil {
				a.writeError(c, err)
			}
		}
		if rt.Public {
			r.Handle(rt.Method, rt.Path, serve)
		} else {
			r.Handle(rt.Method, rt.Path, a.authenticate, serve)
		}
	}
}

// Handler returns a standalone handler serving the console under Prefix,
// with JSON answers for unknown routes (404 NOT_FOUND) and methods (405
// METHOD_NOT_ALLOWED).
func (a *API) Handler() http.Handler {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(gin.Recovery())
	a.Register(e.Group(Prefix))
	e.NoRoute(func(c *gin.Context) {
		a.writeError(c, errorf(http.StatusNotFound, CodeNotFound, "no console endpoint at %s %s: see %s/openapi.yaml",
			c.Request.Method, truncate(c.Request.URL.Path, 200), Prefix))
	})
	e.NoMethod(func(c *gin.Context) {
		a.writeError(c, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed on %s",
			c.Request.Method, truncate(c.Request.URL.Path, 200)))
	})
	return e
}

// ctx returns the request's context bounded by Options.Timeout.
func (a *API) ctx(c *gin.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request.Context(), a.opts.Timeout)
}

//go:embed openapi.yaml
var openAPIDoc []byte

// OpenAPI returns the OpenAPI document of the console.
func OpenAPI() []byte { return openAPIDoc }

func (a *API) openAPI(c *gin.Context) error {
	c.Data(http.StatusOK, "application/yaml", openAPIDoc)
	return nil
}

// brokerFor returns the broker of a cluster named in trace events ("" is
// the default Broker), or nil.
func (a *API) brokerFor(cluster string) Broker {
	if b, ok := a.opts.ClusterBrokers[cluster]; ok && cluster != "" {
		return b
	}
	return a.opts.Broker
}
