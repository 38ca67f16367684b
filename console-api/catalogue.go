package consoleapi

import (
	"net/http"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/apierr"
)

const fixParam = "Fix the query."

// Catalogue is every error answer of the console API. docs/errors.md is
// made from it; a test keeps both, the codes above (ErrorCodes,
// openapi.yaml) and the error table equal.
var Catalogue = apierr.Catalogue{
	API:   "Console API (" + Prefix + "/...)",
	Intro: "Reads change nothing; the operations (delayed cancel and reschedule, dead-letter resend, cursor reset) need the operator role.",
	Codes: []apierr.Code{
		apierr.C(http.StatusBadRequest, CodeInvalidParameter, "a query parameter is malformed, out of range or unknown", fixParam),
		apierr.C(http.StatusBadRequest, CodeInvalidTimeRange, "from/to are not times, or from is not before to", fixParam),
		apierr.C(http.StatusBadRequest, CodeInvalidCursor, "a cursor that this query did not hand out, or an expired one", "Start again without a cursor."),
		apierr.C(http.StatusBadRequest, CodeInvalidMessageID, "not ledgerId:entryId[:partition[:batchIndex]]", fixParam),
		apierr.C(http.StatusBadRequest, CodeInvalidTopic, "not a topic name", fixParam),
		apierr.C(http.StatusBadRequest, CodeMissingFilter, "a search needs at least one criterion", "Add a filter."),
		apierr.C(http.StatusUnauthorized, CodeUnauthenticated, "no or unknown credentials", "Send a console app's token."),
		apierr.C(http.StatusForbidden, CodeForbidden, "the caller may not use the console", "Give the app `console: true` in the config."),
		apierr.C(http.StatusNotFound, CodeMessageNotFound, "no trace event and no retained broker message", "Check the uid or id; the broker may have deleted it."),
		apierr.C(http.StatusNotFound, CodeAppNotFound, "no such app", "Check the app name."),
		apierr.C(http.StatusNotFound, CodeTopicNotFound, "the broker does not know the topic", "Check the topic name."),
		apierr.C(http.StatusNotFound, CodeSubscriptionNotFound, "no such subscription is registered (the consume API's code)", "Check the subscription name."),
		apierr.C(http.StatusNotFound, CodeNotFound, "no such route", "Check the path."),
		apierr.C(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "wrong method for the route", "Use GET."),
		apierr.C(http.StatusConflict, CodeAmbiguousMessageID, "several messages carry this id", "Pass topic, or use the uid."),
		apierr.C(http.StatusBadRequest, CodeInvalidTime, "a cursor-reset or reschedule time that is not RFC 3339 or out of range (a reset in the future, a reschedule in the past or beyond limits.maxDelay)", "Send an RFC 3339 time in range."),
		apierr.C(http.StatusConflict, CodeNotReschedulable, "a delay-level message cannot be moved (it waits in its level's topic)", "Cancel it and produce it again with the new time."),
		apierr.C(http.StatusConflict, CodeMessageInFlight, "a replica is forwarding the delayed message right now", "It is being delivered; check the message's timeline."),
		apierr.C(http.StatusInternalServerError, CodeInternal, "a bug; details are logged, never returned", "Report it with the sidecar's log."),
		apierr.C(http.StatusServiceUnavailable, CodeBrokerUnavailable, "no broker admin URL configured, or the broker failed", "Configure pulsar.adminURL, or retry."),
		apierr.C(http.StatusServiceUnavailable, CodeStoreUnavailable, "the trace store failed or is closed", "Retry; check the trace store."),
		apierr.C(http.StatusGatewayTimeout, CodeStoreUnavailable, "the trace store did not answer in time", "Retry with a narrower query."),
		apierr.C(http.StatusServiceUnavailable, CodeRegistryError, "the subscription registry (Redis) failed", "Retry."),
		apierr.C(http.StatusServiceUnavailable, CodeStatsUnavailable, "a stats provider failed", "Retry."),
		apierr.C(http.StatusGatewayTimeout, CodeStatsUnavailable, "a stats provider did not answer in time", "Retry."),
	},
}
