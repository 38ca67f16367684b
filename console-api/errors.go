package consoleapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/apierr"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Stable error codes. They are part of the API (openapi.yaml lists them):
// callers may branch on them, so they never change meaning. Codes shared
// with the other APIs are apierr's. Catalogue (catalogue.go) gives each its
// status, meaning and fix; docs/errors.md is made from it.
const (
	CodeUnauthenticated      = apierr.CodeUnauthenticated      // 401: no or unknown credentials
	CodeForbidden            = apierr.CodeForbidden            // 403: the caller may not use the console
	CodeInvalidParameter     = "INVALID_PARAMETER"             // 400: a query parameter is malformed, out of range or unknown
	CodeInvalidTimeRange     = "INVALID_TIME_RANGE"            // 400: from/to are not times, or from is not before to
	CodeInvalidCursor        = "INVALID_CURSOR"                // 400: a cursor that this query did not hand out
	CodeInvalidMessageID     = "INVALID_MESSAGE_ID"            // 400: not ledgerId:entryId[:partition[:batchIndex]]
	CodeInvalidTopic         = apierr.CodeInvalidTopic         // 400: not a topic name
	CodeMissingFilter        = "MISSING_FILTER"                // 400: a search needs at least one criterion
	CodeMessageNotFound      = "MESSAGE_NOT_FOUND"             // 404: no trace event and no retained broker message
	CodeAmbiguousMessageID   = "AMBIGUOUS_MESSAGE_ID"          // 409: several messages carry this id; pass topic or use the uid
	CodeAppNotFound          = "APP_NOT_FOUND"                 // 404
	CodeTopicNotFound        = apierr.CodeTopicNotFound        // 404: the broker does not know the topic
	CodeSubscriptionNotFound = apierr.CodeSubscriptionNotFound // 404: no such subscription is registered (the consume API's code)
	CodeNotFound             = apierr.CodeNotFound             // 404: no such route
	CodeMethodNotAllowed     = apierr.CodeMethodNotAllowed     // 405
	CodeBrokerUnavailable    = apierr.CodeBrokerUnavailable    // 503: no broker configured, or it failed
	CodeStoreUnavailable     = "TRACE_STORE_UNAVAILABLE"
	CodeRegistryError        = "REGISTRY_UNAVAILABLE" // 503
	CodeStatsUnavailable     = "STATS_UNAVAILABLE"    // 503: a stats provider failed
	CodeInternal             = apierr.CodeInternal    // 500: details are logged, never returned

	// Operations (issue 15).
	CodeInvalidTime      = "INVALID_TIME"      // 400: a reset or reschedule time that is malformed or out of range
	CodeNotReschedulable = "NOT_RESCHEDULABLE" // 409: a delay level message cannot be moved
	CodeMessageInFlight  = "MESSAGE_IN_FLIGHT" // 409: a replica is forwarding the delayed message right now
)

// ErrorCodes lists every code the console answers with (openapi.yaml's
// enum): Catalogue's.
var ErrorCodes = Catalogue.CodeNames()

// Error is an answer other than 2xx (apierr's, the one every API uses):
// the HTTP status, a stable code and a message for the caller. Err, when
// set, is logged and never sent.
type Error = apierr.Error

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badParam(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, CodeInvalidParameter, format, args...)
}

// toError is the one place that maps an error to an answer. Errors from the
// trace store and the broker that are not the caller's fault become 5xx
// with a generic message; the cause is logged by writeError.
func toError(err error) *Error { return ErrorTable.Answer(err) }

// ErrorTable answers the trace store's sentinel errors (every row is in
// Catalogue: internal/errdocs checks).
var ErrorTable = apierr.Table{
	{Is: tracer.ErrBadCursor, Status: http.StatusBadRequest, Code: CodeInvalidCursor,
		Message: "the cursor is malformed or expired: start again without a cursor"},
	{Is: tracer.ErrBadRange, Status: http.StatusBadRequest, Code: CodeInvalidTimeRange, Message: "from must be before to"},
	{Is: tracer.ErrBadQuery, Status: http.StatusBadRequest, Code: CodeInvalidParameter}, // its text is the message
	{Is: context.DeadlineExceeded, Status: http.StatusGatewayTimeout, Code: CodeStoreUnavailable,
		Message: "the trace store did not answer in time"},
	{Is: tracer.ErrClosed, Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable, Message: "the trace store is closed"},
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

// writeError answers c with err through apierr's writer: toError's
// mapping, counted by Options.OnError.
func (a *API) writeError(c *gin.Context, err error) {
	w := apierr.Writer{API: "console", Log: a.log, Map: func(_ *gin.Context, err error) *Error { return toError(err) }}
	if a.opts.OnError != nil {
		w.Count = func(_ *gin.Context, e *Error) { a.opts.OnError(e.Status, e.Code) }
	}
	w.Write(c, err)
}
