package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/apierr"
)

// Stable error codes. They are part of the API: clients switch on them, so
// a code is never renamed or reused. Catalogue (catalogue.go) lists them
// with their statuses; docs/errors.md is made from it. Codes the APIs
// share are apierr's.
const (
	// 400: the request is malformed; nothing was written.
	CodeInvalidJSON             = apierr.CodeInvalidJSON
	CodeUnknownField            = apierr.CodeUnknownField
	CodeEmptyBatch              = "EMPTY_BATCH"
	CodeTooManyMessages         = "TOO_MANY_MESSAGES"
	CodeInvalidTopic            = apierr.CodeInvalidTopic
	CodePayloadMissing          = "PAYLOAD_MISSING"
	CodePayloadConflict         = "PAYLOAD_CONFLICT"
	CodeInvalidBase64           = "INVALID_BASE64"
	CodeInvalidKey              = "INVALID_KEY"
	CodeInvalidTag              = "INVALID_TAG"
	CodeTooManyTags             = "TOO_MANY_TAGS"
	CodeInvalidProperty         = "INVALID_PROPERTY"
	CodeTooManyProperties       = "TOO_MANY_PROPERTIES"
	CodeReservedProperty        = "RESERVED_PROPERTY"
	CodeInvalidEventTime        = "INVALID_EVENT_TIME"
	CodeInvalidDelay            = "INVALID_DELAY"
	CodeDelayConflict           = "DELAY_CONFLICT"
	CodeInvalidIdempotencyKey   = "INVALID_IDEMPOTENCY_KEY"
	CodeDuplicateIdempotencyKey = "DUPLICATE_IDEMPOTENCY_KEY"
	CodeInvalidRetryPlan        = "INVALID_RETRY_PLAN"
	CodeInvalidUID              = "INVALID_UID"
	// 401, 403: who is calling and what it may do.
	CodeUnauthenticated = apierr.CodeUnauthenticated
	CodeInvalidToken    = "INVALID_TOKEN"
	CodeForbidden       = apierr.CodeForbidden
	CodeInternalTopic   = "INTERNAL_TOPIC"
	// 404, 405: routing.
	CodeNotFound         = apierr.CodeNotFound
	CodeMethodNotAllowed = apierr.CodeMethodNotAllowed
	// 409: idempotency.
	CodeIdempotencyKeyReused  = "IDEMPOTENCY_KEY_REUSED"
	CodeIdempotencyInProgress = "IDEMPOTENCY_IN_PROGRESS"
	// 413: size limits.
	CodePayloadTooLarge = "PAYLOAD_TOO_LARGE"
	CodeRequestTooLarge = apierr.CodeRequestTooLarge
	// 429: rate limit.
	CodeRateLimited = "RATE_LIMITED"
	// 5xx: the sidecar or the broker failed; see the message for what a
	// retry does.
	CodeInternal              = apierr.CodeInternal
	CodeDelayLevelUnavailable = "DELAY_LEVEL_UNAVAILABLE"
	CodeProduceFailed         = "PRODUCE_FAILED"
	CodeProduceTimeout        = "PRODUCE_TIMEOUT"
	CodeShuttingDown          = apierr.CodeShuttingDown
	CodeSpoolFull             = "SPOOL_FULL"
	CodeSpoolWriteFailed      = "SPOOL_WRITE_FAILED"
	CodeProduceRejected       = "PRODUCE_REJECTED"
	CodeTopicNotFound         = apierr.CodeTopicNotFound
	// Delayed messages (cancel, inspect, reschedule).
	CodeDelayedNotFound  = "DELAYED_NOT_FOUND"
	CodeDelayedInFlight  = "DELAYED_IN_FLIGHT"
	CodeDelayedLevel     = "DELAYED_LEVEL_FIXED"
	CodeDelayUnavailable = "DELAY_MODE_UNAVAILABLE"
	// A wheel message that redis.waitReplicas replicas did not confirm in
	// time: on the master only, not acknowledged (retry with the key).
	CodeDelayNotReplicated = "DELAY_NOT_REPLICATED"
	// 499: the client closed the connection before the answer. Nobody
	// reads the answer; the code is for logs and metrics, kept apart from
	// PRODUCE_TIMEOUT so a deadline problem is not hidden among clients
	// that went away.
	CodeClientClosedRequest = "CLIENT_CLOSED_REQUEST"
)

// StatusClientClosedRequest is the status recorded when the client closed
// the connection before the answer (nginx's 499; not a standard status).
const StatusClientClosedRequest = apierr.StatusClientClosedRequest

// Error is an error with its HTTP answer (apierr's, the one every API
// uses). Handlers return it (or wrap it); Server.fail answers it.
type Error = apierr.Error

// errorf builds an *Error with a formatted message.
func errorf(status int, code, format string, args ...any) *Error {
	return apierr.Errorf(status, code, format, args...)
}

func badRequest(code, format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, code, format, args...)
}

// ErrorBody is the JSON error object: {"code":...,"message":...}.
type ErrorBody = apierr.Body

// toError maps any error to an *Error: *Error values as they are, a passed
// deadline to 504, a cancelled request (the client went away) to 499,
// anything else to a 500 that hides its cause.
func toError(err error) *Error { return ErrorTable.Answer(err) }

// ErrorTable is the data plane's (every row is in Catalogue: internal/errdocs
// checks): the components' errors, then a passed deadline and a cancelled
// request.
var ErrorTable = append(componentErrors[:len(componentErrors):len(componentErrors)],
	apierr.Rule{Is: context.DeadlineExceeded, Status: http.StatusGatewayTimeout, Code: CodeProduceTimeout,
		Message: "the request deadline passed before the broker acknowledged; the message may or may not be stored: retry with the same idempotency key"},
	apierr.Rule{Is: context.Canceled, Status: StatusClientClosedRequest, Code: CodeClientClosedRequest,
		Message: "the client closed the request before the answer; a message already handed to the broker may still be stored: retry with the same idempotency key"},
)

// requestError is toError for c's request: a cancellation counts as the
// client closing the request only when the request itself was cancelled;
// any other context cancelled under it is a failure of ours (500).
func requestError(c *gin.Context, err error) *Error {
	e := toError(err)
	if e.Status == StatusClientClosedRequest && !errors.Is(c.Request.Context().Err(), context.Canceled) {
		return apierr.Internal(err)
	}
	return e
}

// errorWriter is the data plane's apierr.Writer: requestError's mapping,
// each answer counted in m's psc_http_errors_total.
func errorWriter(log *slog.Logger, m *Metrics) *apierr.Writer {
	return &apierr.Writer{API: "produce", Log: log, Map: requestError,
		Count: func(_ *gin.Context, e *Error) { m.AddError(e.Code) }}
}
