package consume

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// replace keeps a subscription's series that are still there, drops the
// ones that are gone, and leaves other subscriptions alone.
func TestGaugeSetReplace(t *testing.T) {
	g := newGaugeSet(prometheus.GaugeOpts{Name: "g"}, []string{"subscription", "tag"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(g.vec)
	series := func() map[string]float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				out[m.GetLabel()[0].GetValue()+"/"+m.GetLabel()[1].GetValue()] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	fill := func(vals map[string]float64) func(func(float64, ...string)) {
		return func(set func(float64, ...string)) {
			for tag, v := range vals {
				set(v, tag)
			}
		}
	}
	g.replace("s1", fill(map[string]float64{"A": 1, "B": 2}))
	g.replace("s2", fill(map[string]float64{"A": 5}))
	require.Equal(t, map[string]float64{"s1/A": 1, "s1/B": 2, "s2/A": 5}, series())

	g.replace("s1", fill(map[string]float64{"B": 3, "C": 4}))
	require.Equal(t, map[string]float64{"s1/B": 3, "s1/C": 4, "s2/A": 5}, series())

	g.replace("s1", fill(nil))
	require.Equal(t, map[string]float64{"s2/A": 5}, series())
	require.NotContains(t, g.prev, "s1")
}
