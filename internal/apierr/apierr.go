// Package apierr is how every HTTP API of the sidecar answers an error:
// one error type, the codes the APIs share, a table type that maps
// sentinel errors to answers, and one writer that logs the error, counts
// it (psc_http_errors_total) and writes {"error":{"code","message"}}.
//
// Each API (the data plane in proxy, the consume API, the console API)
// keeps its own codes and its own table; docs/errors.md lists every code
// of every API, generated from their catalogues (see Catalogue).
package apierr

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Codes the APIs share: each means the same in every API that answers it.
const (
	CodeInvalidJSON          = "INVALID_JSON"
	CodeUnknownField         = "UNKNOWN_FIELD"
	CodeInvalidTopic         = "INVALID_TOPIC"
	CodeUnauthenticated      = "UNAUTHENTICATED"
	CodeForbidden            = "FORBIDDEN"
	CodeNotFound             = "NOT_FOUND"
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	CodeTopicNotFound        = "TOPIC_NOT_FOUND"
	CodeSubscriptionNotFound = "SUBSCRIPTION_NOT_FOUND"
	CodeRequestTooLarge      = "REQUEST_TOO_LARGE"
	CodeInternal             = "INTERNAL"
	CodeBrokerUnavailable    = "BROKER_UNAVAILABLE"
	CodeShuttingDown         = "SHUTTING_DOWN"
)

// Span is a byte range in a request field, such as the offending token of
// a tag filter expression.
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Error is an error with its HTTP answer. Handlers return it (or wrap it);
// an API's Writer turns it into the response.
type Error struct {
	Status     int
	Code       string
	Message    string        // shown to the caller; for 5xx it never carries internals
	RetryAfter time.Duration // > 0 sets the Retry-After header (whole seconds, rounded up)
	Position   *Span         // where in the request the error is, when the API says (INVALID_TAG_FILTER)
	Err        error         // the cause, logged, never shown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Internal is the 500 that hides its cause.
func Internal(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
}

// Rule maps one sentinel error to its answer. The rule applies when the
// error is Is (errors.Is) and When, if set, also holds.
type Rule struct {
	Is         error
	When       func(error) bool
	Status     int
	Code       string
	Message    string // "" shows the error's own text (for errors meant to be shown)
	RetryAfter time.Duration
}

// Table is an API's map from sentinel errors to answers, first match wins.
type Table []Rule

// Map answers err by the first rule that applies; nil when none does.
func (t Table) Map(err error) *Error {
	for _, r := range t {
		if !errors.Is(err, r.Is) || (r.When != nil && !r.When(err)) {
			continue
		}
		msg := r.Message
		if msg == "" {
			msg = err.Error()
		}
		return &Error{Status: r.Status, Code: r.Code, Message: msg, RetryAfter: r.RetryAfter, Err: err}
	}
	return nil
}

// Answer is an API's whole mapping: an *Error (or one wrapped) as it
// is, else the first rule that applies, else the 500 that hides its cause.
func (t Table) Answer(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if e := t.Map(err); e != nil {
		return e
	}
	return Internal(err)
}

// Code is one row of an API's catalogue: a code, its status, what it
// means and what the caller does about it. docs/errors.md is made from
// the catalogues.
type Code struct {
	Status  int
	Code    string
	Meaning string
	Fix     string
}

// Catalogue is every answer an API gives other than 2xx.
type Catalogue struct {
	API   string // its name in docs/errors.md
	Intro string // a paragraph under the name
	Codes []Code
}

// Has reports whether the catalogue lists code with status.
func (c Catalogue) Has(status int, code string) bool {
	for _, x := range c.Codes {
		if x.Status == status && x.Code == code {
			return true
		}
	}
	return false
}

// Body is the JSON error object: {"code":...,"message":...}.
type Body struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Position *Span  `json:"position,omitempty"`
}

type response struct {
	Error   Body `json:"error"`
	Results any  `json:"results,omitempty"`
}

// StatusClientClosedRequest is the status recorded when the client closed
// the connection before the answer (nginx's 499; not a standard status).
const StatusClientClosedRequest = 499

// Writer writes one API's error answers.
type Writer struct {
	API   string                                 // in the log line: "<API> request failed"
	Map   func(c *gin.Context, err error) *Error // the API's mapping; nil: an *Error passes as it is, the rest is Internal
	Count func(c *gin.Context, e *Error)         // counts the answer (the sidecar: in psc_http_errors_total); nil counts nothing
	Log   *slog.Logger                           // slog.Default() when nil
}

// Write answers c with err: the API's status and code, a Retry-After
// header when the error says, the bearer challenge on 401 (unless the API
// set its own). A 5xx is logged with its cause, a 499 (the client went
// away) at info; a 4xx is the caller's to read, not logged.
func (w *Writer) Write(c *gin.Context, err error) { w.WriteResults(c, err, nil) }

// WriteResults is Write with results (the data plane's per-message
// outcomes of a batch) beside the error, unless nil.
func (w *Writer) WriteResults(c *gin.Context, err error, results any) {
	e := w.toError(c, err)
	log := w.Log
	if log == nil {
		log = slog.Default()
	}
	ctx := c.Request.Context()
	attrs := []any{"route", c.FullPath(), "method", c.Request.Method, "status", e.Status, "code", e.Code}
	switch {
	case e.Status == StatusClientClosedRequest:
		// The client's doing (a closed connection, a cancelled call), not
		// a failure of ours.
		log.InfoContext(ctx, "client closed the request", attrs...)
	case e.Status >= 500:
		log.ErrorContext(ctx, w.API+" request failed", append(attrs, "err", err)...)
	}
	if w.Count != nil {
		w.Count(c, e)
	}
	if e.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if e.Status == http.StatusUnauthorized && c.Writer.Header().Get("WWW-Authenticate") == "" {
		c.Header("WWW-Authenticate", `Bearer realm="pulsar-sidecar"`)
	}
	c.AbortWithStatusJSON(e.Status, response{Error: Body{Code: e.Code, Message: e.Message, Position: e.Position}, Results: results})
}

func (w *Writer) toError(c *gin.Context, err error) *Error {
	if w.Map != nil {
		if e := w.Map(c, err); e != nil {
			return e
		}
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

// C is a catalogue row.
func C(status int, code, meaning, fix string) Code {
	return Code{Status: status, Code: code, Meaning: meaning, Fix: fix}
}

// CodeNames are the catalogue's codes, each once, in catalogue order.
func (c Catalogue) CodeNames() []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range c.Codes {
		if !seen[x.Code] {
			seen[x.Code] = true
			out = append(out, x.Code)
		}
	}
	return out
}

// Markdown is docs/errors.md: every catalogue's table, in order.
func Markdown(intro string, cats ...Catalogue) string {
	var b strings.Builder
	b.WriteString(intro)
	for _, c := range cats {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n| status | code | when | what to do |\n|---|---|---|---|\n", c.API, c.Intro)
		for _, x := range c.Codes {
			fmt.Fprintf(&b, "| %d | `%s` | %s | %s |\n", x.Status, x.Code, cell(x.Meaning), cell(x.Fix))
		}
	}
	return b.String()
}

// cell keeps a table cell on one line and its pipes literal.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "|", `\|`)
}
