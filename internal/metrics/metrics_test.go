package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/version"
)

// TestHTTPMiddleware counts requests by route pattern, method and code,
// through the cached series, the same as a direct vec lookup would.
func TestHTTPMiddleware(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	reg := prometheus.NewRegistry()
	h := NewHTTP(reg)
	e := gin.New()
	e.Use(h.Middleware())
	e.GET("/items/:id", func(c *gin.Context) {
		if c.Param("id") == "missing" {
			c.Status(http.StatusNotFound)
			return
		}
		c.Status(http.StatusOK)
	})
	for _, path := range []string{"/items/1", "/items/2", "/items/missing", "/items/3", "/nowhere"} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	// Methods are client input: made-up ones share one label value.
	for _, m := range []string{"FOO", "BAR1", "xyz"} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(m, "/items/1", nil))
	}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]map[string]uint64{}
	for _, mf := range mfs {
		series := map[string]uint64{}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			if c := m.GetCounter(); c != nil {
				series[key] = uint64(c.GetValue())
			} else {
				series[key] = m.GetHistogram().GetSampleCount()
			}
		}
		got[mf.GetName()] = series
	}
	want := map[string]uint64{
		"code=200 method=GET route=/items/:id ":  3,
		"code=404 method=GET route=/items/:id ":  1,
		"code=404 method=GET route=unmatched ":   1,
		"code=404 method=other route=unmatched ": 3,
	}
	require.Equal(t, want, got["psc_http_requests_total"])
	require.Equal(t, want, got["psc_http_request_duration_seconds"])
	require.Equal(t, 4, h.series.Len(), "one cache entry per series")
}

// TestBuildInfo: the registry every app uses exports psc_build_info = 1
// with the running build's labels.
func TestBuildInfo(t *testing.T) {
	mfs, err := NewRegistry().Gather()
	require.NoError(t, err)
	v := version.Get()
	for _, mf := range mfs {
		if mf.GetName() != "psc_build_info" {
			continue
		}
		require.Len(t, mf.GetMetric(), 1)
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		require.Equal(t, map[string]string{"version": v.Version, "revision": v.Revision, "goversion": v.GoVersion}, labels)
		require.Equal(t, 1.0, m.GetGauge().GetValue())
		return
	}
	t.Fatal("psc_build_info is not in the registry")
}
