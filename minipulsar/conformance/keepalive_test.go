package conformance

import (
	"os"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// envSlow runs the scenarios that must wait for a real broker's own timers
// (a keep-alive round is 30 s on Pulsar).
const envSlow = "PULSAR_CONFORMANCE_SLOW"

// TestBrokerKeepAlive: the broker pings every connection each keep-alive
// interval (Pulsar: keepAliveIntervalSeconds, 30 s) and closes one only
// after a PING went unanswered. A client that leaves its own pings far
// apart but answers the broker's keeps one connection through several
// rounds of silence. Against minipulsar the interval is shortened; against
// a real Pulsar the test waits 75 s and runs only with PULSAR_CONFORMANCE_SLOW=1.
func TestBrokerKeepAlive(t *testing.T) {
	serviceURL := ""
	idle := 75 * time.Second
	if realPulsar() {
		if os.Getenv(envSlow) == "" {
			t.Skip("waits 75 s against a real Pulsar; set " + envSlow + "=1")
		}
		serviceURL = os.Getenv(envServiceURL)
	} else {
		s := minipulsar.RunOptionsT(t, minipulsar.Options{KeepAlive: 100 * time.Millisecond, Namespaces: minipulsar.RequireNamespaces})
		serviceURL, idle = s.ServiceURL(), time.Second
	}
	reg := prometheus.NewRegistry()
	c := newClient(t, serviceURL, func(o *pulsar.ClientOptions) {
		o.MetricsRegisterer = reg
		o.KeepAliveInterval = time.Hour // the client itself never pings here
	})
	topic := newTopic(t)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	sendN(t, p, 0, 1)
	time.Sleep(idle)
	sendN(t, p, 1, 1)
	require.Equal(t, 1.0, counterValue(t, reg, "pulsar_client_connections_opened"), "connections opened: the broker dropped the idle connection")
	require.Equal(t, 0.0, counterValue(t, reg, "pulsar_client_connections_closed"), "connections closed")
}

// counterValue sums a counter of the client's metrics.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
