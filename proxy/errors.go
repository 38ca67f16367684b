package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// Stable error codes. They are part of the API: clients switch on them, so
// a code is never renamed or reused. The README's error table lists them.
const (
	// 400: the request is malformed; nothing was written.
	CodeInvalidJSON             = "INVALID_JSON"
	CodeUnknownField            = "UNKNOWN_FIELD"
	CodeEmptyBatch              = "EMPTY_BATCH"
	CodeTooManyMessages         = "TOO_MANY_MESSAGES"
	CodeInvalidTopic            = "INVALID_TOPIC"
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
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeInvalidToken    = "INVALID_TOKEN"
	CodeForbidden       = "FORBIDDEN"
	CodeInternalTopic   = "INTERNAL_TOPIC"
	// 404, 405: routing.
	CodeNotFound         = "NOT_FOUND"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	// 409: idempotency.
	CodeIdempotencyKeyReused  = "IDEMPOTENCY_KEY_REUSED"
	CodeIdempotencyInProgress = "IDEMPOTENCY_IN_PROGRESS"
	// 413: size limits.
	CodePayloadTooLarge = "PAYLOAD_TOO_LARGE"
	CodeRequestTooLarge = "REQUEST_TOO_LARGE"
	// 429: rate limit.
	CodeRateLimited = "RATE_LIMITED"
	// 5xx: the sidecar or the broker failed; see the message for what a
	// retry does.
	CodeInternal              = "INTERNAL"
	CodeDelayLevelUnavailable = "DELAY_LEVEL_UNAVAILABLE"
	CodeProduceFailed         = "PRODUCE_FAILED"
	CodeProduceTimeout        = "PRODUCE_TIMEOUT"
	CodeShuttingDown          = "SHUTTING_DOWN"
	CodeSpoolFull             = "SPOOL_FULL"
	CodeSpoolWriteFailed      = "SPOOL_WRITE_FAILED"
	CodeProduceRejected       = "PRODUCE_REJECTED"
	CodeTopicNotFound         = "TOPIC_NOT_FOUND"
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
const StatusClientClosedRequest = 499

// Error is an error with its HTTP answer. Handlers return it (or wrap it);
// writeError is the one place that turns errors into responses.
type Error struct {
	Status     int
	Code       string
	Message    string        // shown to the caller; for 5xx it never carries internals
	RetryAfter time.Duration // > 0 sets the Retry-After header (whole seconds, rounded up)
	Err        error         // the cause, logged, never shown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// errorf builds an *Error with a formatted message.
func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, code, format, args...)
}

// ErrorBody is the JSON error object: {"error":{"code":...,"message":...}}.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type errorResponse struct {
	Error   ErrorBody `json:"error"`
	Results []Result  `json:"results,omitempty"`
}

// toError maps any error to an *Error: *Error values as they are, a passed
// deadline to 504, a cancelled request (the client went away) to 499,
// anything else to a 500 that hides its cause.
func toError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusGatewayTimeout, Code: CodeProduceTimeout,
			Message: "the request deadline passed before the broker acknowledged; the message may or may not be stored: retry with the same idempotency key", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Status: StatusClientClosedRequest, Code: CodeClientClosedRequest,
			Message: "the client closed the request before the answer; a message already handed to the broker may still be stored: retry with the same idempotency key", Err: err}
	default:
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
	}
}

// requestError is toError for c's request: a cancellation counts as the
// client closing the request only when the request itself was cancelled;
// any other context cancelled under it is a failure of ours (500).
func requestError(c *gin.Context, err error) *Error {
	e := toError(err)
	if e.Status == StatusClientClosedRequest && !errors.Is(c.Request.Context().Err(), context.Canceled) {
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
	}
	return e
}

// writeError answers with err's status and JSON body. results, when not
// nil, tells the caller which messages of a batch were stored.
func writeError(c *gin.Context, log *slog.Logger, err error, results []Result) {
	e := requestError(c, err)
	switch {
	case e.Status == StatusClientClosedRequest:
		// The client's doing (a closed connection, a cancelled call), not
		// a failure of ours: what it left in flight is still finished and
		// recorded for the idempotency key.
		log.InfoContext(c.Request.Context(), "client closed the request", "route", c.FullPath(), "status", e.Status, "code", e.Code)
	case e.Status >= 500:
		log.ErrorContext(c.Request.Context(), "request failed", "route", c.FullPath(), "code", e.Code, "err", err)
	}
	if e.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if e.Status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="pulsar-sidecar"`)
	}
	c.AbortWithStatusJSON(e.Status, errorResponse{Error: ErrorBody{Code: e.Code, Message: e.Message}, Results: results})
}
