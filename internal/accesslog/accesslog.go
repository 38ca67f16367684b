// Package accesslog is the HTTP access log and request id of every API the
// sidecar serves (data plane, consume, delay, console): one gin middleware
// that runs first, before routing, so 404s and 405s are logged too.
//
// Request id: a caller's X-Request-Id is kept when it is 1 to MaxIDLen
// characters of [A-Za-z0-9._:/+=-] (what tracing systems and load
// balancers send); anything else, or none, is replaced by a generated id
// (32 hex digits). Either way the id is echoed in the answer's
// X-Request-Id header, stored in the request's context (RequestID) and
// written in the log line, so a caller's report can be found in the logs.
//
// Log line: one per request at info level, message "http request", with
// method, route (the pattern, not the raw path: topics are not logged
// twice), status, code (the stable error code of an error answer, read
// from its {"error":{"code"}} body; "" for a success), app, duration and
// requestId. Successful probes and scrapes (/healthz, /readyz, /metrics)
// are not logged: they come every few seconds and say nothing.
package accesslog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Header is the request id header, read and echoed.
const Header = "X-Request-Id"

// MaxIDLen caps a caller's request id; a longer one is replaced.
const MaxIDLen = 128

// maxCodeSniff caps how much of an error answer's body is kept to read its
// code from: error bodies are small, and a code comes first.
const maxCodeSniff = 1 << 10

// Options configure the middleware.
type Options struct {
	// Logger receives the access log lines; slog.Default() when nil.
	Logger *slog.Logger
	// Disabled turns the log lines off; request ids are still kept,
	// generated and echoed.
	Disabled bool
	// App names the caller of a served request (after the handlers ran),
	// "" when unknown or unauthenticated. nil logs no app.
	App func(c *gin.Context) string
	// Quiet lists route patterns whose successful answers are not logged;
	// DefaultQuiet when nil.
	Quiet []string
}

// DefaultQuiet are the probe and scrape routes.
var DefaultQuiet = []string{"/healthz", "/readyz", "/metrics"}

type ctxKey struct{}

// RequestID is the request id of a request's context, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// ValidID reports whether a caller's request id is kept as it is.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case strings.IndexByte("._:/+=-", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// NewID returns a fresh request id: 16 random bytes in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b[:])
}

// Middleware returns the gin middleware. Install it first (before
// recovery and metrics), with engine.Use, so every answer has an id.
func Middleware(opts Options) gin.HandlerFunc {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "http")
	quiet := map[string]bool{}
	if opts.Quiet == nil {
		opts.Quiet = DefaultQuiet
	}
	for _, r := range opts.Quiet {
		quiet[r] = true
	}
	return func(c *gin.Context) {
		start := time.Now()
		id := c.GetHeader(Header)
		if !ValidID(id) {
			id = NewID()
		}
		c.Header(Header, id)
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), ctxKey{}, id))
		if opts.Disabled {
			c.Next()
			return
		}
		w := &sniffer{ResponseWriter: c.Writer}
		c.Writer = w
		c.Next()
		status := w.Status()
		route := c.FullPath()
		if status < 400 && quiet[route] {
			return
		}
		if route == "" {
			route = "unmatched"
		}
		app := ""
		if opts.App != nil {
			app = opts.App(c)
		}
		log.InfoContext(c.Request.Context(), "http request", "method", c.Request.Method, "route", route,
			"status", status, "code", w.code(), "app", app, "duration", time.Since(start), "requestId", id)
	}
}

// sniffer keeps the start of an error answer's body, to log its code.
type sniffer struct {
	gin.ResponseWriter
	body bytes.Buffer
}

func (s *sniffer) Write(p []byte) (int, error) {
	s.keep(p)
	return s.ResponseWriter.Write(p)
}

func (s *sniffer) WriteString(p string) (int, error) {
	s.keep([]byte(p))
	return s.ResponseWriter.WriteString(p)
}

func (s *sniffer) keep(p []byte) {
	if s.Status() < 400 {
		return
	}
	if room := maxCodeSniff - s.body.Len(); room > 0 {
		s.body.Write(p[:min(len(p), room)])
	}
}

// errorPrefix starts every error body the sidecar writes (compact JSON,
// the code first), so the code is read even from a body longer than what
// was kept.
var errorPrefix = []byte(`{"error":{"code":"`)

// code is the error code of a {"error":{"code":...}} body, or "".
func (s *sniffer) code() string {
	if s.Status() < 400 || s.body.Len() == 0 {
		return ""
	}
	if rest, ok := bytes.CutPrefix(s.body.Bytes(), errorPrefix); ok {
		if end := bytes.IndexByte(rest, '"'); end > 0 && end <= 64 {
			return string(rest[:end])
		}
	}
	var b struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(s.body.Bytes(), &b) != nil {
		return ""
	}
	return b.Error.Code
}

var _ http.ResponseWriter = (*sniffer)(nil)
