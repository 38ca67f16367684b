package consoleapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Stable error codes. They are part of the API (openapi.yaml lists them):
// callers may branch on them, so they never change meaning.
const (
	CodeUnauthenticated      = "UNAUTHENTICATED"        // 401: no or unknown credentials
	CodeForbidden            = "FORBIDDEN"              // 403: the caller may not use the console
	CodeInvalidParameter     = "INVALID_PARAMETER"      // 400: a query parameter is malformed, out of range or unknown
	CodeInvalidTimeRange     = "INVALID_TIME_RANGE"     // 400: from/to are not times, or from is not before to
	CodeInvalidCursor        = "INVALID_CURSOR"         // 400: a cursor that this query did not hand out
	CodeInvalidMessageID     = "INVALID_MESSAGE_ID"     // 400: not ledgerId:entryId[:partition[:batchIndex]]
	CodeInvalidTopic         = "INVALID_TOPIC"          // 400: not a topic name
	CodeMissingFilter        = "MISSING_FILTER"         // 400: a search needs at least one criterion
	CodeMessageNotFound      = "MESSAGE_NOT_FOUND"      // 404: no trace event and no retained broker message
	CodeAmbiguousMessageID   = "AMBIGUOUS_MESSAGE_ID"   // 409: several messages carry this id; pass topic or use the uid
	CodeAppNotFound          = "APP_NOT_FOUND"          // 404
	CodeTopicNotFound        = "TOPIC_NOT_FOUND"        // 404: the broker does not know the topic
	CodeSubscriptionNotFound = "SUBSCRIPTION_NOT_FOUND" // 404: no such subscription is registered (the consume API's code)
	CodeNotFound             = "NOT_FOUND"              // 404: no such route
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"     // 405
	CodeBrokerUnavailable    = "BROKER_UNAVAILABLE"     // 503: no broker configured, or it failed
	CodeStoreUnavailable     = "TRACE_STORE_UNAVAILABLE"
	CodeRegistryError        = "REGISTRY_UNAVAILABLE" // 503
	CodeStatsUnavailable     = "STATS_UNAVAILABLE"    // 503: a stats provider failed
	CodeInternal             = "INTERNAL"             // 500: details are logged, never returned
)

// ErrorCodes lists every code the console answers with.
var ErrorCodes = []string{
	CodeUnauthenticated, CodeForbidden, CodeInvalidParameter, CodeInvalidTimeRange, CodeInvalidCursor,
	CodeInvalidMessageID, CodeInvalidTopic, CodeMissingFilter, CodeMessageNotFound, CodeAmbiguousMessageID,
	CodeAppNotFound, CodeTopicNotFound, CodeSubscriptionNotFound, CodeNotFound, CodeMethodNotAllowed, CodeBrokerUnavailable,
	CodeStoreUnavailable, CodeRegistryError, CodeStatsUnavailable, CodeInternal,
}

// Error is an answer other than 2xx: the HTTP status, a stable code and a
// message for the caller. Err, when set, is logged and never sent.
type Error struct {
	Status  int
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badParam(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, CodeInvalidParameter, format, args...)
}

// errorBody is the JSON of every error: {"error":{"code","message"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// toError is the one place that maps an error to an answer. Errors from the
// trace store and the broker that are not the caller's fault become 5xx
// with a generic message; the cause is logged by writeError.
func toError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, tracer.ErrBadCursor):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidCursor,
			Message: "the cursor is malformed or expired: start again without a cursor", Err: err}
	case errors.Is(err, tracer.ErrBadRange):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidTimeRange, Message: "from must be before to", Err: err}
	case errors.Is(err, tracer.ErrBadQuery):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameter, Message: err.Error(), Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusGatewayTimeout, Code: CodeStoreUnavailable,
			Message: "the trace store did not answer in time", Err: err}
	case errors.Is(err, tracer.ErrClosed):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable, Message: "the trace store is closed", Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
}

// storeError marks a failed trace store query.
func storeError(err error) error {
	e := toError(err)
	if e.Code == CodeInternal {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable,
			Message: "the trace store failed; try again", Err: err}
	}
	return e
}

func (a *API) writeError(c *gin.Context, err error) {
	e := toError(err)
	if a.opts.OnError != nil {
		a.opts.OnError(e.Status, e.Code)
	}
	if e.Status >= 500 {
		a.log.Error("console request failed", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", e.Status, "code", e.Code, "err", err)
	} else {
		a.log.Debug("console request refused", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", e.Status, "code", e.Code, "err", err)
	}
	c.AbortWithStatusJSON(e.Status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}})
}
