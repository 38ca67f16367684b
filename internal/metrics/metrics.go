// Package metrics holds Prometheus plumbing shared by the sidecar's HTTP
// servers: a registry with the Go and process collectors and
// psc_build_info, the /metrics handler, and a gin middleware that counts requests and their latency by
// route pattern and status code.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/version"
)

// Namespace prefixes every metric the sidecar defines.
const Namespace = "psc"

// NewRegistry returns a registry with the Go runtime and process
// collectors and psc_build_info. Each app instance has its own, so several
// can run in one test binary.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(version.Get()))
	return r
}

// buildInfo is psc_build_info{version,revision,goversion} 1, the usual
// Prometheus way to say which build runs: join it on instance to see
// which replicas a rollout has reached.
func buildInfo(v version.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; the labels say which build of pulsar-sidecar runs.",
		ConstLabels: prometheus.Labels{"version": v.Version, "revision": v.Revision, "goversion": v.GoVersion},
	})
	g.Set(1)
	return g
}

// Handler serves the registry in the Prometheus text format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// HTTP counts requests by route pattern (not raw path, so topics do not
// explode the label space), method and status code.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// series caches the children by label values; the code label would
	// also need strconv on every request.
	series *Children[httpKey, httpSeries]
}

type httpKey struct {
	route, method string
	code          int
}

type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// NewHTTP registers psc_http_requests_total and
// psc_http_request_duration_seconds on reg.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern, method and status code.",
			Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
	}
	h.series = NewChildren(func(k httpKey) httpSeries {
		code := strconv.Itoa(k.code)
		return httpSeries{
			requests: h.requests.WithLabelValues(k.route, k.method, code),
			duration: h.duration.WithLabelValues(k.route, k.method, code),
		}
	})
	reg.MustRegister(h.requests, h.duration)
	return h
}

// Middleware observes every request that passes through it.
func (h *HTTP) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		sr := h.series.Get(httpKey{route: route, method: methodLabel(c.Request.Method), code: c.Writer.Status()})
		sr.requests.Inc()
		sr.duration.Observe(time.Since(start).Seconds())
	}
}

// methodLabel bounds the method label: net/http accepts any token as a
// method, so a client could otherwise create series without limit.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "other"
}
