package consoleapi_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
)

const rulesFile = "../docs/alerts/pulsar-sidecar.rules.yml"

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// metricSources says where each metric the rules read comes from: a file
// that defines it (by its name without the namespace), the console's
// Collector (checked by TestCollector), or "needed" for metrics no
// component exposes yet (the rules file lists them under NOT YET EXPOSED).
var metricSources = map[string]struct{ file, name string }{
	"psc_produce_messages_total":          {"../proxy/metrics.go", "produce_messages_total"},
	"psc_broker_ack_seconds":              {"../proxy/metrics.go", "broker_ack_seconds"},
	"psc_rate_limited_total":              {"../proxy/metrics.go", "rate_limited_total"},
	"psc_idempotency_record_errors_total": {"../proxy/metrics.go", "idempotency_record_errors_total"},
	"psc_http_requests_total":             {"../internal/metrics/metrics.go", "http_requests_total"},
	"psc_trace_events_dropped_total":      {"../tracer/metrics.go", "events_dropped_total"},
	"psc_trace_events_spill_failed_total": {"../tracer/metrics.go", "events_spill_failed_total"},
	"psc_trace_outbox_bytes":              {"../tracer/metrics.go", "outbox_bytes"},
	"psc_trace_lag_seconds":               {"../tracer/metrics.go", "lag_seconds"},
	"psc_consume_tag_backlog_messages":    {"../consume/metrics.go", "consume_tag_backlog_messages"},
	consoleapi.MetricBacklogMessages:      {"collector", ""},
	consoleapi.MetricBacklogOldestAge:     {"collector", ""},
	consoleapi.MetricBacklogStatsUp:       {"collector", ""},
	"psc_produce_to_ack_seconds":          {"../consume/latency.go", "produce_to_ack_seconds"},
	"psc_produce_results_total":           {"../proxy/metrics.go", "produce_results_total"},
}

var metricName = regexp.MustCompile(`\b(?:psc|pulsar_sidecar)_[a-z0-9_]+\b`)

func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.Unmarshal(raw, &rf), "the rules file is not valid YAML")
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal(raw, &node))
	require.NotEmpty(t, rf.Groups)

	groups, alerts, records := map[string]bool{}, map[string]bool{}, map[string]bool{}
	used := map[string]bool{}
	for _, g := range rf.Groups {
		require.NotEmpty(t, g.Name)
		require.False(t, groups[g.Name], "group %s is repeated", g.Name)
		groups[g.Name] = true
		require.NotEmpty(t, g.Rules, g.Name)
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			require.True(t, (r.Alert == "") != (r.Record == ""), "%s: a rule is an alert or a record", name)
			require.NotEmpty(t, strings.TrimSpace(r.Expr), name)
			require.Equal(t, strings.Count(r.Expr, "("), strings.Count(r.Expr, ")"), "%s: unbalanced parentheses", name)
			require.Equal(t, strings.Count(r.Expr, "{"), strings.Count(r.Expr, "}"), "%s: unbalanced braces", name)
			if r.Record != "" {
				require.Regexp(t, `^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`, r.Record, "recording rules are named level:metric:operations")
				require.False(t, records[r.Record])
				records[r.Record] = true
				continue
			}
			require.Regexp(t, `^PulsarSidecar[A-Za-z0-9]+$`, r.Alert)
			require.False(t, alerts[r.Alert], "alert %s is repeated", r.Alert)
			alerts[r.Alert] = true
			require.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
			if r.For != "" {
				_, err := time.ParseDuration(r.For)
				require.NoError(t, err, r.Alert)
			}
			for _, rec := range regexp.MustCompile(`\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b`).FindAllString(r.Expr, -1) {
				require.True(t, records[rec], "%s uses %s before it is recorded", r.Alert, rec)
			}
		}
		for _, r := range g.Rules {
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					m = strings.TrimSuffix(m, suffix)
				}
				used[m] = true
			}
		}
	}
	for _, want := range []string{"PulsarSidecarSubscriptionBacklogHigh", "PulsarSidecarProduceToAckSlow",
		"PulsarSidecarAppFailureRate"} {
		require.True(t, alerts[want], "missing %s (backlog, produce-to-ack per business code, failures per app)", want)
	}
	// Failures per client address are not a rule: a client_ip label has no
	// bound (the rules file says why, and points to the console's search).
	require.False(t, alerts["PulsarSidecarClientFailureRate"])
	require.NotContains(t, string(raw), "client_ip)", "no rule groups by client address")

	header := string(raw[:strings.Index(string(raw), "groups:")])
	exposed, notYet := header, ""
	if i := strings.Index(header, "NOT YET EXPOSED"); i >= 0 {
		exposed, notYet = header[:i], header[i:]
	}
	var usedNames []string
	for m := range used {
		usedNames = append(usedNames, m)
		src, ok := metricSources[m]
		require.True(t, ok, "the rules read %s, which nobody is known to expose: add it to metricSources (or list it as needed)", m)
		switch src.file {
		case "needed":
			require.Contains(t, notYet, m, "%s is not exposed yet: the rules file must say so", m)
		case "collector":
			require.Contains(t, exposed, m)
		default:
			code, err := os.ReadFile(filepath.FromSlash(src.file))
			require.NoError(t, err)
			require.Contains(t, string(code), `"`+src.name+`"`, "%s no longer defines %s", src.file, m)
			require.Contains(t, exposed, m)
		}
	}
	for m := range metricSources {
		require.True(t, slices.Contains(usedNames, m), "metricSources lists %s, which no rule reads", m)
	}
}

// TestCollector: the backlog metrics come from the broker's stats of the
// registered topics.
func TestCollector(t *testing.T) {
	e := newEnv(t)
	settlement := e.subscribe("settlement", "settle-1")
	audit := e.subscribe("audit", "audit-1")
	p := e.producer(pulsar.ProducerOptions{DisableBatching: true})
	var last pulsar.MessageID
	for range 4 {
		id, err := p.Send(e.ctx(), &pulsar.ProducerMessage{Payload: []byte("x")})
		require.NoError(t, err)
		last = id
	}
	for range 4 {
		require.NoError(t, settlement.Ack(e.receive(settlement)))
		// Received, so dispatched: the broker counts it unacknowledged
		// for audit (it dispatches in the background otherwise).
		e.receive(audit)
	}
	e.waitCursor("settlement", last)

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(e.api.Collector()))
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			got[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	require.Equal(t, 4.0, got[consoleapi.MetricBacklogMessages+"{audit,"+ordersTopic+"}"], "%v", got)
	require.Equal(t, 0.0, got[consoleapi.MetricBacklogMessages+"{settlement,"+ordersTopic+"}"])
	require.Equal(t, 0.0, got[consoleapi.MetricBacklogOldestAge+"{settlement,"+ordersTopic+"}"])
	require.Greater(t, got[consoleapi.MetricBacklogOldestAge+"{audit,"+ordersTopic+"}"], 0.0)
	require.Equal(t, 1.0, got[consoleapi.MetricBacklogStatsUp+"{"+ordersTopic+"}"])
	require.Equal(t, 0.0, got[consoleapi.MetricBacklogStatsUp+"{persistent://billing/pay/refunds}"], "never used: unknown to the broker")
	require.Equal(t, 4.0, got[consoleapi.MetricUnackedMessages+"{audit,"+ordersTopic+"}"])
}
