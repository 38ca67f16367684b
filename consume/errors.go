package consume

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/apierr"
)

// Stable error codes. They are part of the HTTP API: clients switch on them,
// so a code is never renamed or reused. Codes shared with the other APIs
// are apierr's and mean the same there. Catalogue (catalogue.go) lists every
// code with its status, meaning and fix; docs/errors.md is made from it.
const (
	CodeInvalidJSON              = apierr.CodeInvalidJSON
	CodeUnknownField             = apierr.CodeUnknownField
	CodeInvalidTopic             = apierr.CodeInvalidTopic
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
	CodeInvalidConsumer          = "INVALID_CONSUMER"
	CodeInvalidAckIDs            = "INVALID_ACK_IDS"
	CodeInvalidAckID             = "INVALID_ACK_ID"
	CodeAckIDForeign             = "ACK_ID_FOREIGN"
	CodeAckIDExpired             = "ACK_ID_EXPIRED"
	CodeInvalidRedeliverAfter    = "INVALID_REDELIVER_AFTER"
	CodeRetryUnavailable         = "RETRY_UNAVAILABLE"
	CodeUnauthenticated          = apierr.CodeUnauthenticated
	CodeForbidden                = apierr.CodeForbidden
	CodeSubscriptionNotFound     = apierr.CodeSubscriptionNotFound
	CodeRequestTooLarge          = apierr.CodeRequestTooLarge
	CodeInternal                 = apierr.CodeInternal
	CodeStoreUnavailable         = "STORE_UNAVAILABLE"
	CodeBrokerUnavailable        = apierr.CodeBrokerUnavailable
	CodeShuttingDown             = apierr.CodeShuttingDown
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
type Span = apierr.Span

// Error is an error with its HTTP answer (apierr's, the one every API
// uses). Every error the Service returns to a caller is an *Error (or
// wraps one); AsError maps anything else.
type Error = apierr.Error

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
func AsError(err error) *Error { return ErrorTable.Answer(err) }

// ErrorTable answers the sentinel errors that are no *Error of their own
// (every row is in Catalogue: internal/errdocs checks).
var ErrorTable = apierr.Table{
	{Is: ErrClosed, Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
		Message: "the sidecar is shutting down: retry on another replica"},
	{Is: context.Canceled, Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
		Message: "the request was cancelled before it completed; retry"},
	{Is: context.DeadlineExceeded, Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
		Message: "the request was cancelled before it completed; retry"},
}
