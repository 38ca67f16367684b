package durable

import (
	"context"
	"errors"
	"strings"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// errAttemptTimeout: the cluster did not answer within Options.AttemptTimeout.
// The message may still be stored there later (a "late ack").
var errAttemptTimeout = errors.New("durable: no broker acknowledgement within the attempt timeout")

// Retriable reports whether a send that failed with err may succeed if
// tried again, on the same cluster later or on another one. A retriable
// failure counts against the cluster's circuit breaker; a permanent one is
// the message's own problem (too large, a topic the cluster refuses) and
// is answered at once.
//
// Timeouts, connection and lookup errors, a busy or full producer, broker
// storage errors and anything unknown are retriable: for an unknown error
// the spool is the safe answer. Refusals that would repeat on every try
// (message too big, invalid topic, not authorised or not allowed, topic
// terminated or missing, unsupported) are not.
func Retriable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errAttemptTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, produce.ErrPoolClosed) {
		return true
	}
	var pe *pulsar.Error
	if errors.As(err, &pe) {
		return retriableResult(pe.Result())
	}
	// Producer creation reports the broker's ServerError as plain text
	// (pulsar-client-go v0.19: errors.New(CommandError.String())).
	msg := err.Error()
	for _, name := range permanentServerErrors {
		if strings.Contains(msg, name) {
			return false
		}
	}
	return true
}

// permanentServerErrors are Pulsar ServerError names that the same message
// will meet again on every try.
var permanentServerErrors = []string{
	"AuthenticationError",
	"AuthorizationError",
	"NotAllowedError",
	"TopicNotFound",
	"TopicTerminatedError",
	"InvalidTopicName",
	"UnsupportedVersionError",
	"IncompatibleSchema",
}

func retriableResult(r pulsar.Result) bool {
	switch r {
	case pulsar.InvalidConfiguration,
		pulsar.AuthenticationError,
		pulsar.AuthorizationError,
		pulsar.ErrorGettingAuthenticationData,
		pulsar.InvalidMessage,
		pulsar.InvalidTopicName,
		pulsar.InvalidURL,
		pulsar.OperationNotSupported,
		pulsar.MessageTooBig,
		pulsar.TopicNotFound,
		pulsar.UnsupportedVersionError,
		pulsar.TopicTerminated,
		pulsar.CryptoError,
		pulsar.InvalidBatchBuilderType,
		pulsar.SchemaFailure:
		return false
	}
	// TimeoutError, LookupError, ConnectError, ReadError, NotConnectedError,
	// BrokerMetadataError, BrokerPersistenceError, ServiceUnitNotReady,
	// ProducerQueueIsFull, ProducerBlockedQuota*, TooManyLookupRequest,
	// ClientMemoryBufferIsFull, ProducerClosed, AlreadyClosedError,
	// ProducerFenced (the pool recycles such producers), UnknownError...
	return true
}

// intrinsic reports whether a permanent refusal is about the message itself,
// which every cluster would refuse (too big, malformed, a bad topic name),
// rather than about one cluster's setup (a topic missing there, no
// permission).
func intrinsic(err error) bool {
	var pe *pulsar.Error
	if errors.As(err, &pe) {
		switch pe.Result() {
		case pulsar.MessageTooBig, pulsar.InvalidMessage, pulsar.InvalidTopicName, pulsar.SchemaFailure, pulsar.CryptoError:
			return true
		}
		return false
	}
	return strings.Contains(err.Error(), "InvalidTopicName")
}
