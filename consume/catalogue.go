package consume

import (
	"net/http"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/apierr"
)

const fixRequest = "Fix the request; nothing was changed."

// Catalogue is every error answer of the consume API. docs/errors.md is
// made from it; a test keeps both, the codes above and the error table
// equal. A body may carry "position" ({start, end}) where the request is
// wrong (INVALID_TAG_FILTER).
var Catalogue = apierr.Catalogue{
	API:   "Consume API (/v1/topics/.../subscriptions/...)",
	Intro: "Codes shared with the produce API (INVALID_JSON, UNKNOWN_FIELD, INVALID_TOPIC, UNAUTHENTICATED, FORBIDDEN, REQUEST_TOO_LARGE, INTERNAL, SHUTTING_DOWN) mean the same there.",
	Codes: []apierr.Code{
		apierr.C(http.StatusBadRequest, CodeInvalidJSON, "the body is not the JSON object described", fixRequest),
		apierr.C(http.StatusBadRequest, CodeUnknownField, "the body has a field the API does not know", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidTopic, "tenant, namespace or topic breaks the naming rule", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidSubscription, "the subscription name breaks the naming rule", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidTagFilter, "tagFilter does not compile (the message and `position` say where)", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidSubscriptionType, "type is not shared or key_shared", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidAckTimeout, "ackTimeout is not a Go duration in [1s, 12h]", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidMaxDeliveries, "maxDeliveries is not in [1, 1000]", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidDeadLetterTopic, "deadLetterTopic is malformed or the topic itself", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidExpectedConsumers, "more than 32 names, or an empty or over-long one", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidInitialPosition, "initialPosition is not latest or earliest", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidDedupe, "dedupe is not uid or key", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidMax, "receive max is not in [1, MaxReceive]", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidWait, "receive waitMs is not in [0, MaxWait]", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidConsumer, "consumer (receive, ack, nack) is over 128 bytes, or not printable ASCII without surrounding spaces", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidAckIDs, "ackIds is empty or longer than MaxAckIDs", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidAckID, "an ackId is malformed or was not issued by this deployment", "Send the ackIds a receive answered, unchanged; check consume.secret is the same on every replica."),
		apierr.C(http.StatusBadRequest, CodeAckIDForeign, "an ackId belongs to another topic or subscription", "Acknowledge on the subscription that received it."),
		apierr.C(http.StatusBadRequest, CodeAckIDExpired, "an ackId is older than the dedup window: the message was or will be delivered again", "Acknowledge the new delivery."),
		apierr.C(http.StatusBadRequest, CodeInvalidRedeliverAfter, "redeliverAfter is not a Go duration in [0, MaxRedeliverAfter], or is given with retry", fixRequest),
		apierr.C(http.StatusBadRequest, CodeRetryUnavailable, "a nack with retry on a sidecar without delayed delivery", "Nack without retry, or turn delayed delivery on."),
		apierr.C(http.StatusUnauthorized, CodeUnauthenticated, "no app in the request context (no or unknown token)", "Send the app's token."),
		apierr.C(http.StatusForbidden, CodeForbidden, "the app may not consume from this subscription (or produce to the deadLetterTopic it names)", "Grant the app `consume` on the topic (and `produce` on the dead-letter topic) in the config."),
		apierr.C(http.StatusNotFound, CodeSubscriptionNotFound, "no such subscription is registered", "PUT it first."),
		apierr.C(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, "the body exceeds MaxBodyBytes", "Send fewer ackIds per call."),
		apierr.C(http.StatusInternalServerError, CodeInternal, "a bug; nothing about it is shown", "Report it with the sidecar's log."),
		apierr.C(http.StatusServiceUnavailable, CodeStoreUnavailable, "Redis did not answer; nothing was changed (a receive that could not even withdraw its lease says instead that the messages come back after the ack timeout)", "Retry."),
		apierr.C(http.StatusServiceUnavailable, CodeBrokerUnavailable, "the primary cluster did not create the subscription; nothing was registered", "Retry."),
		apierr.C(http.StatusServiceUnavailable, CodeShuttingDown, "the sidecar is stopping, or the request was cancelled before it completed", "Retry on another replica."),
	},
}
