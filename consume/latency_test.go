package consume

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// produce-to-ack starts at psc-accepted-at, or at psc-delay-due when later;
// a message without psc-accepted-at is not observed; tags beyond the label
// limit count as _other and a message without tags as _none.
func TestProduceToAck(t *testing.T) {
	p := newProduceToAck(2)
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.vec)
	now := time.Date(2026, 5, 1, 12, 0, 10, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format("2006-01-02T15:04:05.000Z07:00") }

	p.observe(map[string]string{"psc-accepted-at": at(-2 * time.Second)}, []string{"PAY_1001"}, now)
	p.observe(map[string]string{"psc-accepted-at": at(-time.Hour), "psc-delay-due": at(-500 * time.Millisecond)}, []string{"PAY_1001"}, now)
	p.observe(map[string]string{"psc-accepted-at": at(-3 * time.Second), "psc-delay-due": "bad"}, []string{"PAY_1002", "VIP"}, now)
	p.observe(map[string]string{"psc-accepted-at": at(-time.Second)}, nil, now)
	p.observe(map[string]string{}, []string{"PAY_1001"}, now) // not produced through the sidecar

	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, mfs, 1)
	type obs struct {
		count uint64
		sum   float64
	}
	got := map[string]obs{}
	for _, m := range mfs[0].GetMetric() {
		h := m.GetHistogram()
		got[m.GetLabel()[0].GetValue()] = obs{h.GetSampleCount(), h.GetSampleSum()}
	}
	require.Equal(t, map[string]obs{
		"PAY_1001": {2, 2.5}, // 2 s, and 0.5 s after its due time (not the hour of delay)
		"PAY_1002": {1, 3},
		"_other":   {1, 3}, // VIP: past the limit of 2 tags
		"_none":    {1, 1},
	}, got)
}
