package consume

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Stable error codes. They are part of the HTTP API: clients switch on them,
// so a code is never renamed or reused. Codes shared with the produce API
// (INVALID_JSON, UNKNOWN_FIELD, INVALID_TOPIC, UNAUTHENTICATED, FORBIDDEN,
// REQUEST_TOO_LARGE, INTERNAL, SHUTTING_DOWN) have the same meaning there.
//
//	status  code                         when
//	400     INVALID_JSON                 the body is not the JSON object described
//	400     UNKNOWN_FIELD                the body has a field the API does not know
//	400     INVALID_TOPIC                tenant, namespace or topic breaks the naming rule
//	400     INVALID_SUBSCRIPTION         the subscription name breaks the naming rule
//	400     INVALID_TAG_FILTER           tagFilter does not compile (the message and "position" say where)
//	400     INVALID_SUBSCRIPTION_TYPE    type is not shared or key_shared
//	400     INVALID_ACK_TIMEOUT          ackTimeout is not a Go duration in [1s, 12h]
//	400     INVALID_MAX_DELIVERIES       maxDeliveries is not in [1, 1000]
//	400     INVALID_DEAD_LETTER_TOPIC    deadLetterTopic is malformed or the topic itself
//	400     INVALID_EXPECTED_CONSUMERS   more than 32 names, or an empty or over-long one
//	400     INVALID_INITIAL_POSITION     initialPosition is not latest or earliest
//	400     INVALID_DEDUPE               dedupe is not uid or key
//	400     INVALID_MAX                  receive max is not in [1, MaxReceive]
//	400     INVALID_WAIT                 receive waitMs is not in [0, MaxWait]
//	400     INVALID_ACK_IDS              ackIds is empty or longer than MaxAckIDs
//	400     INVALID_ACK_ID               an ackId is malformed or was not issued by this deployment
//	400     ACK_ID_FOREIGN               an ackId belongs to another topic or subscription
//	400     ACK_ID_EXPIRED               an ackId is older than the dedup window: the message was or will be delivered again
//	400     INVALID_REDELIVER_AFTER      redeliverAfter is not a Go duration in [0, MaxRedeliverAfter], or is given with retry
//	400     RETRY_UNAVAILABLE            a nack with retry on a sidecar without delayed delivery (Options.Retry)
//	401     UNAUTHENTICATED              no app in the request context
//	403     FORBIDDEN                    the app may not consume from this subscription
//	                                     (or produce to the deadLetterTopic it names)
//	404     SUBSCRIPTION_NOT_FOUND       no such subscription is registered (PUT it first)
//	413     REQUEST_TOO_LARGE            the body exceeds MaxBodyBytes
//	500     INTERNAL                     a bug; nothing about it is shown
//	503     STORE_UNAVAILABLE            Redis did not answer; nothing was changed, retry (a receive that could
//	                                     not even withdraw its lease says instead that the messages come
//	                                     back after the ack timeout)
//	503     BROKER_UNAVAILABLE           the primary cluster did not create the subscription; nothing was registered, retry
//	503     SHUTTING_DOWN                the sidecar is stopping; retry on another replica
const (
	CodeInvalidJSON              = "INVALID_JSON"
	CodeUnknownField             = "UNKNOWN_FIELD"
	CodeInvalidTopic             = "INVALID_TOPIC"
	CodeInvalidSubscription      = "INVALID_SUBSCRIPTION"
	CodeInvalidTagFilter         = "INVALID_TAG_FILTER"
	CodeInvalidSubscriptionType  = "INVALID_SUBSCRIPTION_TYPE"
	CodeInvalidAckTimeout        = "INVALID_ACK_TIMEOUT"
	CodeInvalidMaxDeliveries     = "INVALID_MAX_DELIVERIES"
	CodeInvalidDeadLetterTopic   = "INVALID_DEAD_LETTER_TOPIC"
	CodeInvalidExpectedConsumers = "INVALID_EXPECTED_CONSUMERS"
	CodeInvalidInitialPosition   = "INVALID_INITIAL_POSITION"
	CodeInvalidDedupe            = "INVALID_DEDUPE"
	CodeInvalidMax               = "INVALID_MAX"
	CodeInvalidWait              = "INVALID_WAIT"
	CodeInvalidAckIDs            = "INVALID_ACK_IDS"
	CodeInvalidAckID             = "INVALID_ACK_ID"
	CodeAckIDForeign             = "ACK_ID_FOREIGN"
	CodeAckIDExpired             = "ACK_ID_EXPIRED"
	CodeInvalidRedeliverAfter    = "INVALID_REDELIVER_AFTER"
	CodeRetryUnavailable         = "RETRY_UNAVAILABLE"
	CodeUnauthenticated          = "UNAUTHENTICATED"
	CodeForbidden                = "FORBIDDEN"
	CodeSubscriptionNotFound     = "SUBSCRIPTION_NOT_FOUND"
	CodeRequestTooLarge          = "REQUEST_TOO_LARGE"
	CodeInternal                 = "INTERNAL"
	CodeStoreUnavailable         = "STORE_UNAVAILABLE"
	CodeBrokerUnavailable        = "BROKER_UNAVAILABLE"
	CodeShuttingDown             = "SHUTTING_DOWN"
)

// Sentinel errors, matched with errors.Is. Every *Error the package returns
// for them wraps the sentinel.
var (
	ErrNotFound         = errors.New("consume: subscription not found")
	ErrInvalidAckID     = errors.New("consume: invalid ackId")
	ErrAckIDForeign     = errors.New("consume: ackId of another subscription")
	ErrAckIDExpired     = errors.New("consume: ackId expired")
	ErrStoreUnavailable = errors.New("consume: store unavailable")
	ErrClosed           = errors.New("consume: service closed")
)

// Span is a byte range in a request field, such as the offending token of a
// tag filter expression.
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Error is an error with its HTTP answer. Every error the Service returns
// to a caller is an *Error (or wraps one); AsError maps anything else.
type Error struct {
	Status   int
	Code     string
	Message  string // shown to the caller; never carries internals for 5xx
	Position *Span  // INVALID_TAG_FILTER: where the expression is wrong
	Err      error  // the cause: logged, never shown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, code string, cause error, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

func badRequest(code, format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, code, nil, format, args...)
}

func storeError(err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable,
		Message: "the subscription store (Redis) did not answer; nothing was changed: retry",
		Err:     fmt.Errorf("%w: %w", ErrStoreUnavailable, err)}
}

// leaseUnknownError answers a receive whose lease may have been written
// (its answer was lost) and could not be withdrawn either: "nothing was
// changed" would not be true.
func leaseUnknownError(err error, ackTimeout time.Duration) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable,
		Message: fmt.Sprintf("the subscription store (Redis) did not answer: messages this receive may have leased are delivered again after the ack timeout (%s); retry", ackTimeout),
		Err:     fmt.Errorf("%w: %w", ErrStoreUnavailable, err)}
}

func notFound(ref SubscriptionRef) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeSubscriptionNotFound,
		Message: fmt.Sprintf("subscription %q on topic %s/%s/%s is not registered: PUT it first",
			ref.Subscription, ref.Tenant, ref.Namespace, ref.Topic),
		Err: ErrNotFound}
}

func closedError() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
		Message: "the sidecar is shutting down: retry on another replica", Err: ErrClosed}
}

// AsError maps any error to an *Error: an *Error as it is, a cancelled or
// expired context to 503 SHUTTING_DOWN or 500, anything else to a 500 that
// hides its cause.
func AsError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrClosed):
		return closedError()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
			Message: "the request was cancelled before it completed; retry", Err: err}
	default:
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
	}
}
