package consume

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
)

// MaxNameBytes bounds each of tenant, namespace, topic and subscription, as
// the produce API bounds topic segments.
const MaxNameBytes = 80

// TopicRef names a topic by its path segments.
type TopicRef struct {
	Tenant    string `json:"tenant"`
	Namespace string `json:"namespace"`
	Topic     string `json:"topic"`
}

// SubscriptionRef names a subscription of a topic.
type SubscriptionRef struct {
	Tenant       string `json:"tenant"`
	Namespace    string `json:"namespace"`
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
}

// TopicRef returns the topic part of r.
func (r SubscriptionRef) TopicRef() TopicRef {
	return TopicRef{Tenant: r.Tenant, Namespace: r.Namespace, Topic: r.Topic}
}

// Validate checks the segments against Pulsar's naming rule: letters,
// digits and _ - = : . for the topic's segments, letters, digits and _ - .
// for the subscription; not empty, "." or ".."; at most MaxNameBytes.
func (t TopicRef) Validate() error {
	for _, seg := range [...]struct{ what, v string }{{"tenant", t.Tenant}, {"namespace", t.Namespace}, {"topic", t.Topic}} {
		if msg := checkSegment(seg.v, topicByte); msg != "" {
			return badRequest(CodeInvalidTopic, "%s %q: %s", seg.what, clip(seg.v, 100), msg)
		}
	}
	return nil
}

// Validate checks the topic's segments and the subscription name.
func (r SubscriptionRef) Validate() error {
	if err := r.TopicRef().Validate(); err != nil {
		return err
	}
	if msg := checkSegment(r.Subscription, subByte); msg != "" {
		return badRequest(CodeInvalidSubscription, "subscription %q: %s", clip(r.Subscription, 100), msg)
	}
	return nil
}

// Name is the full Pulsar topic name, persistent://tenant/namespace/topic.
func (t TopicRef) Name() string {
	return "persistent://" + t.Tenant + "/" + t.Namespace + "/" + t.Topic
}

// Path is tenant/namespace/topic.
func (t TopicRef) Path() string { return t.Tenant + "/" + t.Namespace + "/" + t.Topic }

// TopicName is the full Pulsar topic name of the subscription's topic.
func (r SubscriptionRef) TopicName() string { return r.TopicRef().Name() }

// Path is tenant/namespace/topic/subscription; no segment holds '/', so it
// names the subscription unambiguously (Redis keys use it).
func (r SubscriptionRef) Path() string { return r.TopicRef().Path() + "/" + r.Subscription }

// binding is the 64-bit id of a subscription that ackIds carry and Redis
// state keys use: the first 8 bytes of SHA-256 over its path.
func (r SubscriptionRef) binding() uint64 {
	sum := sha256.Sum256([]byte(r.Path()))
	return binary.BigEndian.Uint64(sum[:8])
}

func bindingHex(b uint64) string {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], b)
	return hex.EncodeToString(buf[:])
}

func checkSegment(s string, ok func(byte) bool) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxNameBytes:
		return "longer than " + strconv.Itoa(MaxNameBytes) + " bytes"
	case s == "." || s == "..":
		return "must not be . or .."
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			if ok(':') {
				return "may only hold letters, digits and _ - = : ."
			}
			return "may only hold letters, digits and _ - ."
		}
	}
	return ""
}

func subByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

func topicByte(c byte) bool { return subByte(c) || c == '=' || c == ':' }

// parseTopicPath reads "topic" (in the namespace of def) or
// "tenant/namespace/topic".
func parseTopicPath(s string, def TopicRef) (TopicRef, bool) {
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 1:
		def.Topic = parts[0]
		return def, true
	case 3:
		return TopicRef{Tenant: parts[0], Namespace: parts[1], Topic: parts[2]}, true
	}
	return TopicRef{}, false
}

// ParseTopicName reads a full persistent topic name,
// persistent://tenant/namespace/topic, as the console gives it.
func ParseTopicName(name string) (TopicRef, error) {
	rest, ok := strings.CutPrefix(name, "persistent://")
	if !ok {
		return TopicRef{}, badRequest(CodeInvalidTopic, "topic %q: the consume API serves persistent topics only", clip(name, 100))
	}
	t, ok := parseTopicPath(rest, TopicRef{})
	if !ok || t.Tenant == "" {
		return TopicRef{}, badRequest(CodeInvalidTopic, "topic %q: want persistent://tenant/namespace/topic", clip(name, 100))
	}
	if err := t.Validate(); err != nil {
		return TopicRef{}, err
	}
	return t, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
