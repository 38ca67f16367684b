package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

const alertsBurstToken = "alerts-burst-token-0001"

// freeLoopbackPort returns a port that was free a moment ago.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// startPrometheus runs a real Prometheus (Debian package prometheus) on
// port, scraping target's /metrics every second and evaluating
// docs/alerts/pulsar-sidecar.rules.yml every second, with every for:
// shortened to 2s so that a rule fires within seconds. It is killed when
// the test ends.
func startPrometheus(t *testing.T, port int, target string) {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("no prometheus installed (apt-get install -y prometheus): the alerts test is skipped")
	}
	dir := t.TempDir()
	rules, err := os.ReadFile("../docs/alerts/pulsar-sidecar.rules.yml")
	require.NoError(t, err)
	rules = regexp.MustCompile(`(?m)^(\s+for:) \S+$`).ReplaceAll(rules, []byte("$1 2s"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o600))
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: pulsar-sidecar
    static_configs:
      - targets: [%q]
`, target)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	out, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		_ = out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	})
}

type alertsAnswer struct {
	Data []struct {
		Name, State, Severity, Summary string
		Labels                         map[string]string
	}
	Source, Note string
}

// TestConsoleAlerts: without console.prometheusURL the console says how
// to set it; with it, a real Prometheus scraping the sidecar with the
// shipped alert rules (short for:) reports PulsarSidecarAppRateLimited
// firing once an app goes over its rate limit, and the console answers it
// as firing, to a viewer.
func TestConsoleAlerts(t *testing.T) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Skip("no prometheus installed (apt-get install -y prometheus): the alerts test is skipped")
	}
	// Without a Prometheus: a note saying how to set one.
	h0 := startEmbedded(t, t.TempDir(), webApps)
	r := h0.do(http.MethodGet, "/console/v1/alerts", bearer(webViewerToken), nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.JSONEq(t, `{"data":null,"note":"no Prometheus is configured: set console.prometheusURL (PSC_CONSOLE_PROMETHEUS_URL) to the Prometheus that scrapes this sidecar with docs/alerts/pulsar-sidecar.rules.yml loaded"}`, r.Raw)

	port := freeLoopbackPort(t)
	promURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	h := startEmbedded(t, t.TempDir(), func(c *config.Config) {
		webApps(c)
		c.Apps = append(c.Apps, config.App{Name: "burst", TokenSHA256: proxy.HashToken(alertsBurstToken), Produce: []string{"*"},
			RateLimit: config.RateLimit{MessagesPerSecond: 0.001, Burst: 1}})
		c.Console.PrometheusURL = promURL
	})
	// Prometheus not up yet: the console says the provider failed.
	r = h.do(http.MethodGet, "/console/v1/alerts", bearer(webViewerToken), nil)
	require.Equal(t, http.StatusServiceUnavailable, r.Status, r.Raw)
	require.Equal(t, "STATS_UNAVAILABLE", r.code())

	startPrometheus(t, port, h.app.Addr())
	var ans alertsAnswer
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/alerts", bearer(webViewerToken), nil)
		return r.Status == http.StatusOK && json.Unmarshal([]byte(r.Raw), &ans) == nil
	}, 30*time.Second, 200*time.Millisecond, "prometheus answers")
	require.Equal(t, promURL, ans.Source)
	require.Empty(t, ans.Data, "nothing fires on a quiet sidecar")

	// Prometheus must have scraped the counter at 0 before the fault.
	require.Eventually(t, func() bool {
		res, err := http.Get(promURL + `/api/v1/query?query=psc_rate_limited_total{app="burst"}`)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return strings.Contains(string(b), `"0"]`)
	}, 30*time.Second, 200*time.Millisecond, "prometheus scrapes the sidecar")
	time.Sleep(1500 * time.Millisecond) // a second sample at 0
	path, _ := newTopic(t)
	limited := 0
	for range 4 {
		res := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", bearer(alertsBurstToken), []byte(`{"messages":[{"payload":"x"}]}`))
		if res.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	require.GreaterOrEqual(t, limited, 3, "the app is over its rate limit")

	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, q := range []string{"/api/v1/targets", "/api/v1/query?query=psc_rate_limited_total", "/api/v1/alerts"} {
			if res, err := http.Get(promURL + q); err == nil {
				b, _ := io.ReadAll(io.LimitReader(res.Body, 4000))
				_ = res.Body.Close()
				t.Logf("prometheus %s: %s", q, b)
			}
		}
	})
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/alerts", bearer(webViewerToken), nil)
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		ans = alertsAnswer{}
		require.NoError(t, json.Unmarshal([]byte(r.Raw), &ans))
		for _, a := range ans.Data {
			if a.Name == "PulsarSidecarAppRateLimited" && a.State == "firing" {
				return true
			}
		}
		return false
	}, 60*time.Second, 500*time.Millisecond, "the rate-limit rule fires")
	for _, a := range ans.Data {
		if a.Name == "PulsarSidecarAppRateLimited" {
			require.Equal(t, "burst", a.Labels["app"])
			require.Equal(t, "info", a.Severity)
			require.NotEmpty(t, a.Summary)
		}
	}
}
