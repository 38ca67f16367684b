package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestErrorContextMapping: a passed deadline and a client that went away
// are different answers, logged at different levels; wrapped causes map
// like bare ones.
func TestErrorContextMapping(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
		level  string // "" when nothing is logged
	}{
		{"deadline", context.DeadlineExceeded, http.StatusGatewayTimeout, CodeProduceTimeout, "ERROR"},
		{"wrapped deadline", fmt.Errorf("idempotency: %w", context.DeadlineExceeded), http.StatusGatewayTimeout, CodeProduceTimeout, "ERROR"},
		{"client closed", context.Canceled, StatusClientClosedRequest, CodeClientClosedRequest, "INFO"},
		{"wrapped client closed", fmt.Errorf("redis: %w", context.Canceled), StatusClientClosedRequest, CodeClientClosedRequest, "INFO"},
		{"cancelled under an open request", fmt.Errorf("store: %w", context.Canceled), http.StatusInternalServerError, CodeInternal, "ERROR"},
		{"own error", badRequest(CodeInvalidKey, "bad key"), http.StatusBadRequest, CodeInvalidKey, ""},
		{"anything else", errors.New("boom"), http.StatusInternalServerError, CodeInternal, "ERROR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			req := httptest.NewRequest(http.MethodPost, "/v1/topics/t/n/x/messages", nil)
			if tc.status == StatusClientClosedRequest {
				ctx, cancel := context.WithCancel(req.Context())
				cancel() // the client went away
				req = req.WithContext(ctx)
			}
			c.Request = req
			errorWriter(log, NewMetrics(prometheus.NewRegistry())).Write(c, tc.err)
			require.Equal(t, tc.status, w.Code)
			assert.Contains(t, w.Body.String(), `"code":"`+tc.code+`"`)
			if tc.level == "" {
				assert.Empty(t, logs.String())
				return
			}
			require.Equal(t, 1, strings.Count(logs.String(), "\n"), logs.String())
			assert.Contains(t, logs.String(), "level="+tc.level)
			assert.Contains(t, logs.String(), "code="+tc.code)
			if tc.status == StatusClientClosedRequest {
				assert.Contains(t, logs.String(), "status=499")
			}
		})
	}
}
