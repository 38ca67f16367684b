package proxy

import (
	"net/http"
	"strings"
)

// InternalPrefix starts the name of every tenant, namespace or topic that
// the sidecar keeps for itself: the delay-level topics
// (public/psc-delay/level-<level>, ADR 040) and the durable sender's health
// probe topic (public/default/psc-health, ADR 050). Retry steps live in the
// wheel's Redis index and dead letters go to topics the subscription names,
// so neither has a topic of its own.
//
// Apps may not produce to these topics whatever their permission patterns
// say ("public/*" matches public/psc-delay/level-1s): a message written
// into a level topic by hand is forwarded to whatever its properties name,
// or dropped as unreadable after a 200. Nor may they consume them: a
// subscription on a level topic would see other apps' messages before they
// are due.
const InternalPrefix = "psc-"

// IsInternalTopic reports whether tenant/namespace/topic is one of the
// sidecar's own topics: any of the three names starts with InternalPrefix.
func IsInternalTopic(tenant, namespace, topic string) bool {
	return strings.HasPrefix(tenant, InternalPrefix) || strings.HasPrefix(namespace, InternalPrefix) ||
		strings.HasPrefix(topic, InternalPrefix)
}

// IsInternalTopicName is IsInternalTopic for a full name,
// persistent://tenant/namespace/topic (or tenant/namespace/topic).
func IsInternalTopicName(full string) bool {
	parts := strings.SplitN(strings.TrimPrefix(full, "persistent://"), "/", 3)
	return len(parts) == 3 && IsInternalTopic(parts[0], parts[1], parts[2])
}

// internalTopic is the answer to an app that names an internal topic: 403,
// nothing written.
func internalTopic(tenant, namespace, topic string) *Error {
	return errorf(http.StatusForbidden, CodeInternalTopic,
		"%s/%s/%s is internal to the sidecar (names starting with %q are reserved): apps may not use it", tenant, namespace, topic, InternalPrefix)
}

// CheckInternalTopic answers internalTopic when tenant/namespace/topic is
// internal, nil otherwise. Routes mounted beside the produce API (the delay
// API) use it.
func CheckInternalTopic(tenant, namespace, topic string) error {
	if IsInternalTopic(tenant, namespace, topic) {
		return internalTopic(tenant, namespace, topic)
	}
	return nil
}
