package proxy

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/durable"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/apierr"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
)

const retrySame = "; the message may or may not be stored: retry with the same idempotency key"

// componentErrors answer the errors of the components behind the data
// plane: the durable sender (ADR 050) and the delay engine. An error none
// of them names is answered by toError or sendError their own way (a
// passed deadline, a closed pool, ...).
var componentErrors = apierr.Table{
	{Is: durable.ErrSpoolFull, Status: http.StatusServiceUnavailable, Code: CodeSpoolFull, RetryAfter: 5 * time.Second,
		Message: "no cluster took the message in time and the local spool is full" + retrySame},
	{Is: durable.ErrSpoolWrite, Status: http.StatusServiceUnavailable, Code: CodeSpoolWriteFailed, RetryAfter: 5 * time.Second,
		Message: "no cluster took the message in time and writing the local spool failed" + retrySame},
	{Is: durable.ErrClosed, Status: http.StatusServiceUnavailable, Code: CodeShuttingDown,
		Message: "the sidecar is shutting down" + retrySame},
	{Is: durable.ErrRejected, When: func(err error) bool { return errors.Is(err, spool.ErrTooLarge) || isMessageTooBig(err) },
		Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge, Message: "the broker refuses a message this large"},
	{Is: durable.ErrRejected, When: isTopicNotFound, Status: http.StatusNotFound, Code: CodeTopicNotFound,
		Message: "the Pulsar cluster has no such topic: its tenant or namespace does not exist, or the namespace does not " +
			"allow creating topics on first use; an operator creates them (pulsar-admin tenants create / namespaces create); nothing was stored"},
	{Is: durable.ErrRejected, Status: http.StatusBadGateway, Code: CodeProduceRejected,
		Message: "the broker refused the message for good (see the sidecar's log); retrying the same request will not help"},

	{Is: delay.ErrUnknownLevel, Status: http.StatusBadRequest, Code: CodeInvalidDelay}, // the engine's text is the message
	{Is: delay.ErrInvalid, Status: http.StatusBadRequest, Code: CodeInvalidDelay},
	{Is: delay.ErrNotFound, Status: http.StatusNotFound, Code: CodeDelayedNotFound,
		Message: "no delayed message with this uid waits (delivered, cancelled, native deliverAt, or never scheduled)"},
	{Is: delay.ErrLevelFixed, Status: http.StatusConflict, Code: CodeDelayedLevel,
		Message: "a delayLevel message cannot be rescheduled: cancel it and produce it again"},
	{Is: delay.ErrInFlight, Status: http.StatusConflict, Code: CodeDelayedInFlight, RetryAfter: time.Second,
		Message: "the message is being delivered right now"},
	{Is: delay.ErrModeUnavailable, Status: http.StatusNotImplemented, Code: CodeDelayUnavailable},
	{Is: delay.ErrNotReplicated, Status: http.StatusServiceUnavailable, Code: CodeDelayNotReplicated, RetryAfter: time.Second,
		Message: "the delayed message reached fewer Redis replicas than redis.waitReplicas in time: it is not acknowledged; retry with the same idempotency key"},
	{Is: delay.ErrClosed, Status: http.StatusServiceUnavailable, Code: CodeShuttingDown, Message: "the sidecar is shutting down"},
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
