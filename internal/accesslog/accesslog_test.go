package accesslog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"abc", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true}, // traceparent
		{"Root=1-67891233-abcdef012345678912345678", true},                // AWS ALB
		{"a/b+c=d_e.f:g", true},
		{strings.Repeat("x", MaxIDLen), true},
		{strings.Repeat("x", MaxIDLen+1), false},
		{"", false},
		{"has space", false},
		{"new\nline", false},
		{`quote"`, false},
		{"ünïcode", false},
	} {
		assert.Equal(t, tc.want, ValidID(tc.id), "%q", tc.id)
	}
	assert.True(t, ValidID(NewID()))
	assert.NotEqual(t, NewID(), NewID())
}

// serve runs one request through an engine with the middleware first and
// a handler that answers status with body, returning the answer and the
// log's lines.
func serve(t *testing.T, opts Options, reqID string, status int, body string) (*httptest.ResponseRecorder, []map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	opts.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	e := gin.New()
	e.Use(Middleware(opts))
	e.GET("/things/:id", func(c *gin.Context) {
		assert.Equal(t, c.Writer.Header().Get(Header), RequestID(c.Request.Context()))
		c.Data(status, "application/json", []byte(body))
	})
	req := httptest.NewRequest(http.MethodGet, "/things/7", nil)
	if reqID != "" {
		req.Header.Set(Header, reqID)
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		lines = append(lines, m)
	}
	return w, lines
}

func TestMiddlewareCode(t *testing.T) {
	long := `{"error":{"code":"PRODUCE_FAILED","message":"x"},"results":[` + strings.Repeat(`{"uid":"u"},`, 200) + `{}]}`
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"success", `{"error":{"code":"NOT_AN_ERROR"}}`, 200, ""},
		{"error", `{"error":{"code":"INVALID_JSON","message":"m"}}`, 400, "INVALID_JSON"},
		{"longer than kept", long, 503, "PRODUCE_FAILED"},
		{"indented", "{\n \"error\": {\"message\":\"m\", \"code\": \"X\"}}", 500, "X"},
		{"not json", `oops`, 502, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, lines := serve(t, Options{}, "", tc.status, tc.body)
			require.Equal(t, tc.status, w.Code)
			assert.Equal(t, tc.body, w.Body.String(), "the answer is not changed")
			require.Len(t, lines, 1)
			assert.Equal(t, tc.want, lines[0]["code"])
			assert.Equal(t, "/things/:id", lines[0]["route"])
			assert.Equal(t, w.Header().Get(Header), lines[0]["requestId"])
		})
	}
}

func TestMiddlewareDisabled(t *testing.T) {
	w, lines := serve(t, Options{Disabled: true}, "keep-me", 200, `{}`)
	assert.Empty(t, lines)
	assert.Equal(t, "keep-me", w.Header().Get(Header))
}

func TestMiddlewareQuiet(t *testing.T) {
	_, lines := serve(t, Options{Quiet: []string{"/things/:id"}}, "", 200, `{}`)
	assert.Empty(t, lines)
	_, lines = serve(t, Options{Quiet: []string{"/things/:id"}}, "", 500, `{}`)
	assert.Len(t, lines, 1, "a failed probe is logged")
}

// FuzzRequestID: whatever header a caller sends, the echoed id is valid,
// at most MaxIDLen long, and is the caller's own exactly when that was
// valid.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"", "abc", "a b", strings.Repeat("z", 200), "x\x00y", "00-4bf9-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		w, lines := serve(t, Options{}, id, 200, `{}`)
		got := w.Header().Get(Header)
		require.True(t, ValidID(got))
		require.LessOrEqual(t, len(got), MaxIDLen)
		// net/http drops header values it cannot carry; what arrives is
		// what the middleware judged.
		sent := httptest.NewRequest(http.MethodGet, "/", nil)
		sent.Header.Set(Header, id)
		if v := sent.Header.Get(Header); ValidID(v) {
			require.Equal(t, v, got)
		} else {
			require.Len(t, got, 32)
		}
		require.Len(t, lines, 1)
		require.Equal(t, got, lines[0]["requestId"])
	})
}
