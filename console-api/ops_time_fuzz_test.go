package consoleapi_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
)

var fuzzNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// requireBadRequest: a refusal is a 400 with one of codes.
func requireBadRequest(t *testing.T, err error, codes ...string) {
	t.Helper()
	var e *consoleapi.Error
	require.True(t, errors.As(err, &e), "%v", err)
	require.Equal(t, http.StatusBadRequest, e.Status)
	require.Contains(t, codes, e.Code)
}

// FuzzResetBody: the cursor-reset body parser never panics; what it
// accepts is a UTC time not later than a minute from now; what it
// refuses is a 400 INVALID_PARAMETER or INVALID_TIME.
func FuzzResetBody(f *testing.F) {
	for _, s := range []string{`{"time":"2026-12-06T11:00:00Z"}`, `{"time":"2026-12-06T13:00:00+02:00"}`, `{"time":"2027-01-01T00:00:00Z"}`,
		`{"time":"yesterday"}`, `{"time":""}`, `{"at":"x"}`, `{} {}`, ``, `null`, `{"time":"0001-01-01T00:00:00Z"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		at, err := consoleapi.ParseResetBody(body, fuzzNow)
		if err != nil {
			requireBadRequest(t, err, consoleapi.CodeInvalidParameter, consoleapi.CodeInvalidTime)
			return
		}
		require.False(t, at.After(fuzzNow.Add(time.Minute)))
		require.GreaterOrEqual(t, at.Year(), 1970)
		require.Equal(t, time.UTC, at.Location())
	})
}

// FuzzRescheduleBody: the reschedule body parser never panics; what it
// accepts is a UTC time after now.
func FuzzRescheduleBody(f *testing.F) {
	for _, s := range []string{`{"deliverAt":"2026-12-06T13:00:00Z"}`, `{"deliverAt":"2026-12-06T11:00:00Z"}`, `{"deliverAt":"soon"}`,
		`{"deliverAfter":"1h"}`, `{"deliverAt":"2026-12-06T13:00:00Z"} 1`, ``, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		due, err := consoleapi.ParseRescheduleBody(body, fuzzNow)
		if err != nil {
			requireBadRequest(t, err, consoleapi.CodeInvalidParameter, consoleapi.CodeInvalidTime)
			return
		}
		require.True(t, due.After(fuzzNow))
		require.Equal(t, time.UTC, due.Location())
	})
}

// FuzzPrometheusAlerts: the parser of Prometheus's /api/v1/alerts answer
// never panics and keeps only firing and pending alerts, firing first.
func FuzzPrometheusAlerts(f *testing.F) {
	for _, s := range []string{
		`{"status":"success","data":{"alerts":[{"labels":{"alertname":"B","severity":"page"},"annotations":{"summary":"s"},"state":"pending","activeAt":"2026-12-06T11:00:00Z","value":"1e+00"},{"labels":{"alertname":"A"},"state":"firing"},{"state":"inactive"}]}}`,
		`{"status":"error","error":"x"}`, `{"status":"success","data":{"alerts":null}}`, `{"status":"success","data":{"alerts":[{"labels":null,"state":"firing"}]}}`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		alerts, err := consoleapi.ParsePrometheusAlerts(body)
		if err != nil {
			return
		}
		pending := false
		for _, a := range alerts {
			require.Contains(t, []string{"firing", "pending"}, a.State)
			require.NotNil(t, a.Labels)
			if a.State == "pending" {
				pending = true
			} else {
				require.False(t, pending, "firing first")
			}
		}
	})
}

func TestPrometheusAlertsParse(t *testing.T) {
	alerts, err := consoleapi.ParsePrometheusAlerts([]byte(`{"status":"success","data":{"alerts":[` +
		`{"labels":{"alertname":"B","severity":"page"},"annotations":{"summary":"s","description":"d"},"state":"pending","activeAt":"2026-12-06T11:00:00Z","value":"1e+00"},` +
		`{"labels":{"alertname":"A"},"state":"firing"},{"labels":{"alertname":"C"},"state":"inactive"}]}}`))
	require.NoError(t, err)
	require.Len(t, alerts, 2)
	require.Equal(t, "A", alerts[0].Name)
	require.Equal(t, "firing", alerts[0].State)
	require.Equal(t, "B", alerts[1].Name)
	require.Equal(t, "page", alerts[1].Severity)
	require.Equal(t, "s", alerts[1].Summary)
	require.Equal(t, "d", alerts[1].Description)
	require.True(t, alerts[1].ActiveAt.Equal(time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)))
	_, err = consoleapi.ParsePrometheusAlerts([]byte(`{"status":"error","error":"bad"}`))
	require.Error(t, err)
}
