package metrics

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// values gathers g: "name{label values}" -> counter value.
func values(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName() + "{"
			for _, l := range m.GetLabel() {
				key += l.GetValue() + ","
			}
			out[key+"}"] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestChildrenMakesEachChildOnce: concurrent first uses of a key share one
// child, and counts through the cache land in the vec's series.
func TestChildrenMakesEachChildOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"a", "b"})
	reg.MustRegister(vec)
	var mu sync.Mutex
	made := map[[2]string]int{}
	c := NewChildren(func(k [2]string) prometheus.Counter {
		mu.Lock()
		made[k]++
		mu.Unlock()
		return vec.WithLabelValues(k[0], k[1])
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Get([2]string{"p", "ok"}).Inc()
				c.Get([2]string{"p", "failed"}).Inc()
			}
		})
	}
	wg.Wait()
	require.Equal(t, 2, c.Len())
	require.Equal(t, map[string]float64{"x_total{p,ok,}": 800, "x_total{p,failed,}": 800}, values(t, reg))
	require.Len(t, made, 2, "make is asked only for the keys used")
}

// TestOrDiscard: a nil Registerer becomes a private registry that takes
// registrations (so metrics are always built); a given one is kept.
func TestOrDiscard(t *testing.T) {
	reg := prometheus.NewRegistry()
	require.Same(t, reg, OrDiscard(reg))
	d := OrDiscard(nil)
	require.NotNil(t, d)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "y_total", Help: "y"})
	require.NoError(t, d.Register(c))
	c.Inc()
	require.Equal(t, map[string]float64{"y_total{}": 1}, values(t, d.(prometheus.Gatherer)))
	require.Empty(t, values(t, reg), "the given registry saw nothing of the discarded one")
}
