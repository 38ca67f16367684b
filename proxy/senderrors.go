package proxy

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/durable"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
)

const retrySame = "; the message may or may not be stored: retry with the same idempotency key"

// componentError answers the errors of the components behind the data
// plane: the durable sender (ADR 050) and the delay engine. It returns nil
// for an error neither of them names; toError and sendError then answer
// it their own way (a passed deadline, a closed pool, ...).
func componentError(err error) *Error {
	switch {
	case errors.Is(err, durable.ErrSpoolFull):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeSpoolFull,
			Message: "no cluster took the message in time and the local spool is full" + retrySame, RetryAfter: 5 * time.Second, Err: err}
	case errors.Is(err, durable.ErrSpoolWrite):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeSpoolWriteFailed,
			Message: "no cluster took the message in time and writing the local spool failed" + retrySame, RetryAfter: 5 * time.Second, Err: err}
	case errors.Is(err, durable.ErrClosed):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
			Message: "the sidecar is shutting down" + retrySame, Err: err}
	case errors.Is(err, durable.ErrRejected) && (errors.Is(err, spool.ErrTooLarge) || isMessageTooBig(err)):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
			Message: "the broker refuses a message this large", Err: err}
	case errors.Is(err, durable.ErrRejected) && isTopicNotFound(err):
		return &Error{Status: http.StatusNotFound, Code: CodeTopicNotFound,
			Message: "the Pulsar cluster has no such topic: its tenant or namespace does not exist, or the namespace does not " +
				"allow creating topics on first use; an operator creates them (pulsar-admin tenants create / namespaces create); nothing was stored",
			Err: err}
	case errors.Is(err, durable.ErrRejected):
		return &Error{Status: http.StatusBadGateway, Code: CodeProduceRejected,
			Message: "the broker refused the message for good (see the sidecar's log); retrying the same request will not help", Err: err}

	case errors.Is(err, delay.ErrUnknownLevel), errors.Is(err, delay.ErrInvalid):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidDelay, Message: err.Error(), Err: err}
	case errors.Is(err, delay.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeDelayedNotFound,
			Message: "no delayed message with this uid waits (delivered, cancelled, native deliverAt, or never scheduled)", Err: err}
	case errors.Is(err, delay.ErrLevelFixed):
		return &Error{Status: http.StatusConflict, Code: CodeDelayedLevel,
			Message: "a delayLevel message cannot be rescheduled: cancel it and produce it again", Err: err}
	case errors.Is(err, delay.ErrInFlight):
		return &Error{Status: http.StatusConflict, Code: CodeDelayedInFlight,
			Message: "the message is being delivered right now", RetryAfter: time.Second, Err: err}
	case errors.Is(err, delay.ErrModeUnavailable):
		return &Error{Status: http.StatusNotImplemented, Code: CodeDelayUnavailable, Message: err.Error(), Err: err}
	case errors.Is(err, delay.ErrClosed):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
			Message: "the sidecar is shutting down", Err: err}
	}
	return nil
}

// isTopicNotFound: the broker refused the topic as missing (Pulsar answers
// a lookup or producer on a missing tenant or namespace so). Producer
// creation reports it as text in pulsar-client-go v0.19.
func isTopicNotFound(err error) bool {
	var pe *pulsar.Error
	if errors.As(err, &pe) && pe.Result() == pulsar.TopicNotFound {
		return true
	}
	return strings.Contains(err.Error(), "TopicNotFound")
}

func isMessageTooBig(err error) bool {
	var pe *pulsar.Error
	return errors.As(err, &pe) && pe.Result() == pulsar.MessageTooBig
}
