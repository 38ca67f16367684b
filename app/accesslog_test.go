package app

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/accesslog"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
)

// lineLog keeps the app's log lines as JSON, for tests that read them.
type lineLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the decoded lines whose msg is msg.
func (l *lineLog) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// accessLine is the access log line of the request with id, or nil.
func (l *lineLog) accessLine(t *testing.T, id string) map[string]any {
	t.Helper()
	var found map[string]any
	for _, m := range l.lines(t, "http request") {
		if m["requestId"] == id {
			require.Nil(t, found, "two access lines for request %s", id)
			found = m
		}
	}
	return found
}

func startAccessLogged(t *testing.T, edit func(*config.Config)) (*harness, *lineLog) {
	t.Helper()
	logs := &lineLog{}
	h := startApp(t, edit, WithRecorder(&recorder{}),
		WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	return h, logs
}

// TestAccessLog: every request of every API, routed or not, gets one info
// line with its route pattern, status, error code, app, duration and
// request id; the caller's valid X-Request-Id is kept and echoed, an
// invalid or missing one is replaced by a generated one.
func TestAccessLog(t *testing.T) {
	h, logs := startAccessLogged(t, nil)
	path, _ := newTopic(t)

	send := func(method, url, reqID, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, h.base+url, strings.NewReader(body))
		require.NoError(t, err)
		if reqID != "" {
			req.Header.Set(accesslog.Header, reqID)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := h.http.Do(req)
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		return res
	}

	cases := []struct {
		name, method, url, reqID, body string
		keepID                         bool
		status                         int
		route, code, app               string
	}{
		{name: "produce", method: "POST", url: "/v1/topics/" + path + "/messages", reqID: "trace-7f3a:01",
			body: `{"messages":[{"payload":"hi"}]}`, keepID: true, status: 200,
			route: "/v1/topics/:tenant/:namespace/:topic/messages", app: "dev"},
		{name: "produce refused", method: "POST", url: "/v1/topics/" + path + "/messages", reqID: "bad id with spaces",
			body: `{"messages":[]}`, status: 400, route: "/v1/topics/:tenant/:namespace/:topic/messages",
			code: "EMPTY_BATCH", app: "dev"},
		{name: "console", method: "GET", url: "/console/v1/registry/topics", reqID: strings.Repeat("a", accesslog.MaxIDLen),
			keepID: true, status: 200, route: "/console/v1/registry/topics"},
		{name: "console refused", method: "GET", url: "/console/v1/search?bogus=1", status: 400,
			route: "/console/v1/search", code: "INVALID_PARAMETER"},
		{name: "no route", method: "GET", url: "/nope", reqID: strings.Repeat("a", accesslog.MaxIDLen+1),
			status: 404, route: "unmatched", code: "NOT_FOUND"},
		{name: "delay", method: "GET", url: "/v1/delayed/no-such-uid", status: 400, route: "/v1/delayed/:uid",
			code: "INVALID_UID", app: "dev"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := send(tc.method, tc.url, tc.reqID, tc.body)
			require.Equal(t, tc.status, res.StatusCode)
			id := res.Header.Get(accesslog.Header)
			require.True(t, accesslog.ValidID(id), "echoed id %q", id)
			if tc.keepID {
				assert.Equal(t, tc.reqID, id)
			} else {
				assert.NotEqual(t, tc.reqID, id)
				assert.Len(t, id, 32)
			}
			line := logs.accessLine(t, id)
			require.NotNil(t, line, "no access line for %s", id)
			assert.Equal(t, "INFO", line["level"])
			assert.Equal(t, tc.method, line["method"])
			assert.Equal(t, tc.route, line["route"])
			assert.InDelta(t, tc.status, line["status"], 0)
			assert.Equal(t, tc.code, line["code"])
			assert.Equal(t, tc.app, line["app"])
			assert.Positive(t, line["duration"])
		})
	}

	// Probes and scrapes that succeed are not logged; they still get an id.
	before := len(logs.lines(t, "http request"))
	for _, u := range []string{"/healthz", "/readyz", "/metrics"} {
		res := send("GET", u, "", "")
		require.Equal(t, 200, res.StatusCode, u)
		require.NotEmpty(t, res.Header.Get(accesslog.Header))
	}
	assert.Len(t, logs.lines(t, "http request"), before)
}

// TestAccessLogOff: log.access=false writes no lines but still echoes ids.
func TestAccessLogOff(t *testing.T) {
	h, logs := startAccessLogged(t, func(c *config.Config) { c.Log.Access = false })
	req, err := http.NewRequest("GET", h.base+"/console/v1/registry/topics", nil)
	require.NoError(t, err)
	req.Header.Set(accesslog.Header, "abc-123")
	res, err := h.http.Do(req)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Equal(t, 200, res.StatusCode)
	assert.Equal(t, "abc-123", res.Header.Get(accesslog.Header))
	assert.Empty(t, logs.lines(t, "http request"))
	assert.NotEmpty(t, logs.lines(t, "pulsar-sidecar started"), "the log itself works")
}

// splitLines decodes JSON log lines.
func splitLines(t *testing.T, raw string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}
