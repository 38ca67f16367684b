package proxy

import (
	"net/http"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/apierr"
)

const (
	fixRequest = "Fix the request; nothing was written."
	fixRetry   = "Retry with the same idempotency key."
)

// Catalogue is every error answer of the data plane (produce and the delay
// API). docs/errors.md is made from it; a test keeps both, the codes above
// and the error tables equal.
var Catalogue = apierr.Catalogue{
	API: "Produce and delay API (/v1/topics/.../messages, /v1/delayed/...)",
	Intro: "The data plane. A batch that fails part-way answers the error with `results`, one per message, " +
		"each with its own `error` when it was not stored.",
	Codes: []apierr.Code{
		apierr.C(http.StatusBadRequest, CodeInvalidJSON, "malformed JSON, wrong field type, trailing data, invalid UTF-8, empty body", fixRequest),
		apierr.C(http.StatusBadRequest, CodeUnknownField, "a field the API does not know", fixRequest),
		apierr.C(http.StatusBadRequest, CodeEmptyBatch, "no messages", fixRequest),
		apierr.C(http.StatusBadRequest, CodeTooManyMessages, "more than `limits.maxMessagesPerRequest`", "Split the batch."),
		apierr.C(http.StatusBadRequest, CodeInvalidTopic, "tenant, namespace or topic breaks the naming rule", fixRequest),
		apierr.C(http.StatusBadRequest, CodePayloadMissing, "neither `payload` nor `payloadBase64`", fixRequest),
		apierr.C(http.StatusBadRequest, CodePayloadConflict, "both `payload` and `payloadBase64`", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidBase64, "`payloadBase64` is not standard padded base64", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidKey, "key too long or not UTF-8", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidTag, "a tag breaks the tag syntax (or is empty)", fixRequest),
		apierr.C(http.StatusBadRequest, CodeTooManyTags, "more than `limits.maxTags`", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidProperty, "empty, too long or non-UTF-8 name or value; bad `X-Properties`; a property given twice", fixRequest),
		apierr.C(http.StatusBadRequest, CodeTooManyProperties, "more than `limits.maxProperties`", fixRequest),
		apierr.C(http.StatusBadRequest, CodeReservedProperty, "a property name starting with `psc-`", "Rename the property: `psc-` is the sidecar's."),
		apierr.C(http.StatusBadRequest, CodeInvalidEventTime, "not RFC 3339, or before 1970", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidDelay, "bad duration or time, out of range, unknown delay level; in the delay API a bad `deliverAt`/`deliverAfter`, `key` or `limit`", fixRequest),
		apierr.C(http.StatusBadRequest, CodeDelayConflict, "more than one of `deliverAfter`, `deliverAt`, `delayLevel`", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidIdempotencyKey, "too long, or not printable ASCII without spaces", fixRequest),
		apierr.C(http.StatusBadRequest, CodeDuplicateIdempotencyKey, "two messages of one request share a key", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidRetryPlan, "`retryPlan` / `X-Retry-Plan` is empty, has an empty or non-positive step, a step over 366 days, more than 64 steps or 1024 bytes; the message names the step and its byte offset", fixRequest),
		apierr.C(http.StatusBadRequest, CodeInvalidUID, "the delay API's `{uid}` is not a canonical UUID (36 lower-case characters)", "Use the uid the produce answer gave."),
		apierr.C(http.StatusUnauthorized, CodeUnauthenticated, "no `Authorization: Bearer <token>`", "Send the app's token."),
		apierr.C(http.StatusUnauthorized, CodeInvalidToken, "the token belongs to no app", "Send a configured app's token."),
		apierr.C(http.StatusForbidden, CodeForbidden, "the app may not produce to this topic (nor see or change its delayed messages)", "Grant the app `produce` on the topic in the config."),
		apierr.C(http.StatusForbidden, CodeInternalTopic, "the topic is one of the sidecar's own (a name starting with `psc-`, such as `public/psc-delay/level-1s`)", "Produce to your own topic."),
		apierr.C(http.StatusNotFound, CodeNotFound, "no such route", "Check the method and path."),
		apierr.C(http.StatusNotFound, CodeTopicNotFound, "the Pulsar cluster has no such topic: its tenant or namespace does not exist (a real Pulsar does not create them on first use; the embedded mode does); nothing was stored", "Create them with `pulsar-admin`."),
		apierr.C(http.StatusNotFound, CodeDelayedNotFound, "no wheel or level message waits under this uid (delivered, cancelled, native `deliverAt`, or never scheduled)", "Nothing to do: it is gone or was never delayed."),
		apierr.C(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "wrong method for the route", "Check the method."),
		apierr.C(http.StatusConflict, CodeIdempotencyKeyReused, "the key was used for a different message", "Use a new key for a new message."),
		apierr.C(http.StatusConflict, CodeIdempotencyInProgress, "the key's first attempt is still in flight", "Retry after `Retry-After`."),
		apierr.C(http.StatusConflict, CodeDelayedInFlight, "the delayed message is being delivered right now", "Retry after `Retry-After`; it may be delivered by then."),
		apierr.C(http.StatusConflict, CodeDelayedLevel, "a `delayLevel` message cannot be rescheduled", "Cancel it and produce it again."),
		apierr.C(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "a payload over `limits.maxPayloadBytes` (1 MiB), or one the broker refuses as too large", "Send a smaller payload."),
		apierr.C(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, "a body over `limits.maxRequestBytes`", "Split the batch."),
		apierr.C(http.StatusTooManyRequests, CodeRateLimited, "the app is over its rate limit", "Retry after `Retry-After`."),
		apierr.C(StatusClientClosedRequest, CodeClientClosedRequest, "the client closed the connection (or cancelled its call) before the answer. Nobody receives it: logs (at info), `psc_http_requests_total{code=\"499\"}` and `psc_http_errors_total{code=\"CLIENT_CLOSED_REQUEST\"}` record it. A message already handed over is still sent and its outcome stored for its idempotency key", "Retry with the same idempotency key: the stored outcome is returned, nothing is produced twice."),
		apierr.C(http.StatusInternalServerError, CodeInternal, "a bug; details are in the sidecar's log, never in the answer", "Report it with the log."),
		apierr.C(http.StatusNotImplemented, CodeDelayLevelUnavailable, "`delayLevel` when delay levels are off (`delay.levels: off`)", "Use `deliverAfter`/`deliverAt`, or turn levels on."),
		apierr.C(http.StatusNotImplemented, CodeDelayUnavailable, "the delay mode a request needs is not available (the wheel without Redis)", "Configure the delay mode's dependency."),
		apierr.C(http.StatusServiceUnavailable, CodeDelayNotReplicated, "a timing-wheel message was not confirmed by redis.waitReplicas Redis replicas within redis.waitTimeout; it is not acknowledged", "Retry with the same idempotency key (Retry-After); check the Redis replicas' replication link."),
		apierr.C(http.StatusBadGateway, CodeProduceRejected, "the broker refused the message for good (see the log)", "A retry will not help: fix the message or the topic's policy."),
		apierr.C(http.StatusServiceUnavailable, CodeProduceFailed, "the broker did not store the message", fixRetry),
		apierr.C(http.StatusServiceUnavailable, CodeShuttingDown, "the sidecar is stopping", "Retry (on another replica) with the same idempotency key."),
		apierr.C(http.StatusServiceUnavailable, CodeSpoolFull, "no cluster took the message and the local spool is full (`durability.spoolMaxBytes` or a full disk)", "Retry after `Retry-After` with the same idempotency key."),
		apierr.C(http.StatusServiceUnavailable, CodeSpoolWriteFailed, "no cluster took the message and writing the spool failed", "Retry after `Retry-After` with the same idempotency key."),
		apierr.C(http.StatusGatewayTimeout, CodeProduceTimeout, "no acknowledgement within `http.requestTimeout`; the message may or may not be stored", fixRetry),
	},
}
