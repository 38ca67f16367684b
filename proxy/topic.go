package proxy

import "net/http"

// MaxTopicSegmentBytes bounds each of tenant, namespace and topic. Pulsar's
// own limit on a full topic name is about 255 characters in ZooKeeper paths.
const MaxTopicSegmentBytes = 80

// TopicName checks the three path segments of a topic against Pulsar's
// naming rule (letters, digits, '_', '-', '=', ':', '.'; not "." or "..")
// and returns the full name persistent://tenant/namespace/topic.
func TopicName(tenant, namespace, topic string) (string, error) {
	for _, seg := range [...]struct{ what, v string }{{"tenant", tenant}, {"namespace", namespace}, {"topic", topic}} {
		if err := validSegment(seg.v); err != "" {
			return "", errorf(http.StatusBadRequest, CodeInvalidTopic, "%s %q: %s", seg.what, truncate(seg.v, 100), err)
		}
	}
	return "persistent://" + tenant + "/" + namespace + "/" + topic, nil
}

func validSegment(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxTopicSegmentBytes:
		return "longer than 80 bytes"
	case s == "." || s == "..":
		return "must not be . or .."
	}
	for i := 0; i < len(s); i++ {
		if !segmentByte(s[i]) {
			return "may only hold letters, digits and _ - = : ."
		}
	}
	return ""
}

func segmentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '=' || c == ':' || c == '.'
}

// truncate shortens s for error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
