package consoleapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// AlertsProvider says which alert rules fire now (issue 15): the health
// page shows them.
type AlertsProvider interface {
	// Alerts returns the firing and pending alerts, firing first.
	Alerts(ctx context.Context) ([]Alert, error)
	// Source names where they come from (the Prometheus URL).
	Source() string
}

// Alert is one active alert.
type Alert struct {
	Name        string            `json:"name"`  // the alertname label
	State       string            `json:"state"` // firing or pending
	Severity    string            `json:"severity,omitempty"`
	Summary     string            `json:"summary,omitempty"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels"`
	ActiveAt    *time.Time        `json:"activeAt,omitempty"`
	Value       string            `json:"value,omitempty"`
}

var alertsRoutes = []Route{
	{Method: http.MethodGet, Path: "/alerts", handler: (*API).listAlerts},
}

func init() { routes = append(routes, alertsRoutes...) }

// alertsAnswer is GET /alerts: data is null (with a note) when no
// Prometheus is configured.
type alertsAnswer struct {
	Data   []Alert `json:"data"`
	Source string  `json:"source,omitempty"`
	Note   string  `json:"note,omitempty"`
}

// NoAlertsNote is what GET /alerts says without a Prometheus.
const NoAlertsNote = "no Prometheus is configured: set console.prometheusURL (PSC_CONSOLE_PROMETHEUS_URL) to the Prometheus that scrapes this sidecar with docs/alerts/pulsar-sidecar.rules.yml loaded"

// GET /alerts
func (a *API) listAlerts(c *gin.Context) error {
	p := a.opts.Ops.Alerts
	if p == nil {
		c.JSON(http.StatusOK, alertsAnswer{Note: NoAlertsNote})
		return nil
	}
	ctx, cancel := a.ctx(c)
	defer cancel()
	alerts, err := p.Alerts(ctx)
	if err != nil {
		return statsError(err)
	}
	if alerts == nil {
		alerts = []Alert{}
	}
	c.JSON(http.StatusOK, alertsAnswer{Data: alerts, Source: p.Source()})
	return nil
}

// PrometheusAlerts reads the active alerts of a Prometheus server through
// its HTTP API (GET /api/v1/alerts).
type PrometheusAlerts struct {
	base   *url.URL
	client *http.Client
}

// NewPrometheusAlerts checks the server's base URL (http or https, no
// query); client nil is a client with a 5 s timeout.
func NewPrometheusAlerts(base string, client *http.Client) (*PrometheusAlerts, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("consoleapi: prometheus URL %q: want http(s)://host[:port][/path]", base)
	}
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &PrometheusAlerts{base: u, client: client}, nil
}

// Source is the server's URL without credentials.
func (p *PrometheusAlerts) Source() string {
	u := *p.base
	u.User = nil
	return u.String()
}

// maxAlertsBody caps what is read of Prometheus's answer.
const maxAlertsBody = 8 << 20

// Alerts asks Prometheus for its active alerts.
func (p *PrometheusAlerts) Alerts(ctx context.Context) ([]Alert, error) {
	u := p.base.JoinPath("api/v1/alerts")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", p.Source(), err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAlertsBody+1))
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", p.Source(), err)
	}
	if len(body) > maxAlertsBody {
		return nil, fmt.Errorf("prometheus %s: the answer is larger than %d bytes", p.Source(), maxAlertsBody)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("prometheus %s: HTTP %d: %s", p.Source(), resp.StatusCode, truncate(string(body), 200))
	}
	return ParsePrometheusAlerts(body)
}

// ParsePrometheusAlerts reads the answer of Prometheus's GET
// /api/v1/alerts ({"status":"success","data":{"alerts":[...]}}): the
// firing alerts first, then the pending ones, each by name.
func ParsePrometheusAlerts(body []byte) ([]Alert, error) {
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Alerts []struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
				State       string            `json:"state"`
				ActiveAt    *time.Time        `json:"activeAt"`
				Value       string            `json:"value"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("prometheus: the alerts answer is not JSON: %w", err)
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("prometheus: alerts answered status %q: %s", truncate(ans.Status, 40), truncate(ans.Error, 200))
	}
	out := make([]Alert, 0, len(ans.Data.Alerts))
	for _, a := range ans.Data.Alerts {
		if a.State != "firing" && a.State != "pending" {
			continue // inactive, or a state this console does not know
		}
		labels := a.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		al := Alert{Name: labels["alertname"], State: a.State, Severity: labels["severity"], Labels: labels,
			Summary: a.Annotations["summary"], Description: a.Annotations["description"], Value: a.Value}
		if a.ActiveAt != nil && !a.ActiveAt.IsZero() {
			t := a.ActiveAt.UTC()
			al.ActiveAt = &t
		}
		out = append(out, al)
	}
	slices.SortStableFunc(out, func(x, y Alert) int {
		if x.State != y.State {
			if x.State == "firing" {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	return out, nil
}
