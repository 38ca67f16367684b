package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/tagfilter"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// Limits bound what one request may carry. DefaultLimits gives the
// documented defaults.
type Limits struct {
	MaxPayloadBytes        int64         // one message's payload; 413 PAYLOAD_TOO_LARGE
	MaxRequestBytes        int64         // one request body; 413 REQUEST_TOO_LARGE
	MaxMessages            int           // messages in one JSON batch
	MaxKeyBytes            int           // message key
	MaxTags                int           // tags per message
	MaxProperties          int           // user properties per message
	MaxPropertyKeyBytes    int           // property name
	MaxPropertyValueBytes  int           // property value
	MaxIdempotencyKeyBytes int           // idempotency key
	MaxDelay               time.Duration // deliverAfter, and how far ahead deliverAt may be
}

// DefaultLimits returns the defaults documented in the README.
func DefaultLimits() Limits {
	return Limits{
		MaxPayloadBytes:        1 << 20,
		MaxRequestBytes:        5 << 20,
		MaxMessages:            100,
		MaxKeyBytes:            256,
		MaxTags:                16,
		MaxProperties:          32,
		MaxPropertyKeyBytes:    128,
		MaxPropertyValueBytes:  4096,
		MaxIdempotencyKeyBytes: 255,
		MaxDelay:               30 * 24 * time.Hour,
	}
}

// deliverAtSlack is how far in the past a deliverAt may be: a client whose
// clock is a little behind, or a request that took a while to arrive, still
// gets its message (delivered at once, status persisted).
const deliverAtSlack = time.Minute

// fields names the request fields in error messages: JSON paths for the
// batch form ("messages[2].tags[0]"), header names for the raw form.
type fields interface {
	name(field string) string
}

// input is one message as decoded, before validation.
type input struct {
	payload        []byte
	hasPayload     bool
	key            string
	tags           []string
	properties     map[string]string
	eventTime      string
	deliverAfter   string
	deliverAt      string
	delayLevel     string
	idempotencyKey string
	retryPlan      string
	hasRetryPlan   bool // the raw form: X-Retry-Plan was sent, even if empty
}

// validate checks one decoded message against the limits and returns it as
// a Message. now is the acceptance time, used for deliverAt's range.
func validate(in *input, f fields, topic string, lim *Limits, now time.Time) (*produce.Message, error) {
	m := &produce.Message{Topic: topic, Payload: in.payload, Key: in.key, IdempotencyKey: in.idempotencyKey}
	if !in.hasPayload {
		return nil, badRequest(CodePayloadMissing, "%s: a message needs payload or payloadBase64", f.name("payload"))
	}
	if int64(len(in.payload)) > lim.MaxPayloadBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
			"%s: %d bytes, the limit is %d", f.name("payload"), len(in.payload), lim.MaxPayloadBytes)
	}
	if len(m.Key) > lim.MaxKeyBytes {
		return nil, badRequest(CodeInvalidKey, "%s: %d bytes, the limit is %d", f.name("key"), len(m.Key), lim.MaxKeyBytes)
	}
	if !utf8.ValidString(m.Key) {
		return nil, badRequest(CodeInvalidKey, "%s: not valid UTF-8", f.name("key"))
	}

	if len(in.tags) > lim.MaxTags {
		return nil, badRequest(CodeTooManyTags, "%s: %d tags, the limit is %d", f.name("tags"), len(in.tags), lim.MaxTags)
	}
	for i, t := range in.tags {
		if err := tagfilter.ValidTag(t); err != nil {
			return nil, badRequest(CodeInvalidTag, "%s: %q: 1 to %d of A-Z a-z 0-9 _ - . : /",
				f.name(indexed("tags", i)), truncate(t, 140), tagfilter.MaxTagLen)
		}
	}
	m.Tags = produce.NormalizeTags(in.tags)

	if len(in.properties) > lim.MaxProperties {
		return nil, badRequest(CodeTooManyProperties, "%s: %d properties, the limit is %d", f.name("properties"), len(in.properties), lim.MaxProperties)
	}
	for k, v := range in.properties {
		where := f.name("properties") + "[" + quoteShort(k) + "]"
		switch {
		case k == "":
			return nil, badRequest(CodeInvalidProperty, "%s: empty property name", f.name("properties"))
		case strings.HasPrefix(strings.ToLower(k), produce.ReservedPrefix):
			return nil, badRequest(CodeReservedProperty, "%s: names starting with %q are reserved for the sidecar", where, produce.ReservedPrefix)
		case len(k) > lim.MaxPropertyKeyBytes:
			return nil, badRequest(CodeInvalidProperty, "%s: name is %d bytes, the limit is %d", where, len(k), lim.MaxPropertyKeyBytes)
		case len(v) > lim.MaxPropertyValueBytes:
			return nil, badRequest(CodeInvalidProperty, "%s: value is %d bytes, the limit is %d", where, len(v), lim.MaxPropertyValueBytes)
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return nil, badRequest(CodeInvalidProperty, "%s: not valid UTF-8", where)
		}
	}
	if len(in.properties) > 0 {
		m.Properties = in.properties
	}

	if in.eventTime != "" {
		t, err := time.Parse(time.RFC3339Nano, in.eventTime)
		if err != nil || t.UnixMilli() <= 0 {
			return nil, badRequest(CodeInvalidEventTime, "%s: %q: want an RFC 3339 time after 1970, such as 2025-03-01T12:00:00.123Z",
				f.name("eventTime"), truncate(in.eventTime, 60))
		}
		m.EventTime = t
	}

	if err := validateDelay(in, f, m, lim, now); err != nil {
		return nil, err
	}

	if in.retryPlan != "" || in.hasRetryPlan {
		plan, err := delay.ParseRetryPlan(in.retryPlan)
		if err != nil {
			return nil, badRequest(CodeInvalidRetryPlan, "%s: %v", f.name("retryPlan"), err)
		}
		m.RetryPlan = plan.String()
	}

	if k := in.idempotencyKey; k != "" {
		if len(k) > lim.MaxIdempotencyKeyBytes {
			return nil, badRequest(CodeInvalidIdempotencyKey, "%s: %d bytes, the limit is %d", f.name("idempotencyKey"), len(k), lim.MaxIdempotencyKeyBytes)
		}
		for i := 0; i < len(k); i++ {
			if k[i] < 0x21 || k[i] > 0x7e {
				return nil, badRequest(CodeInvalidIdempotencyKey, "%s: only printable ASCII without spaces is allowed", f.name("idempotencyKey"))
			}
		}
	}
	return m, nil
}

func validateDelay(in *input, f fields, m *produce.Message, lim *Limits, now time.Time) error {
	var given []string
	for _, d := range [...]struct{ field, v string }{{"deliverAfter", in.deliverAfter}, {"deliverAt", in.deliverAt}, {"delayLevel", in.delayLevel}} {
		if d.v != "" {
			given = append(given, f.name(d.field))
		}
	}
	if len(given) > 1 {
		return badRequest(CodeDelayConflict, "%s: give at most one of them", strings.Join(given, ", "))
	}
	switch {
	case in.deliverAfter != "":
		d, err := time.ParseDuration(in.deliverAfter)
		if err != nil || d <= 0 || d > lim.MaxDelay {
			return badRequest(CodeInvalidDelay, "%s: %q: want a Go duration between 1ms and %s, such as 15m",
				f.name("deliverAfter"), truncate(in.deliverAfter, 60), lim.MaxDelay)
		}
		if d < time.Millisecond {
			return badRequest(CodeInvalidDelay, "%s: %q: Pulsar counts delays in milliseconds; give at least 1ms", f.name("deliverAfter"), in.deliverAfter)
		}
		m.DeliverAfter = d
	case in.deliverAt != "":
		t, err := time.Parse(time.RFC3339Nano, in.deliverAt)
		if err != nil {
			return badRequest(CodeInvalidDelay, "%s: %q: want an RFC 3339 time such as 2025-03-01T12:15:00Z", f.name("deliverAt"), truncate(in.deliverAt, 60))
		}
		if t.Before(now.Add(-deliverAtSlack)) || t.After(now.Add(lim.MaxDelay)) {
			return badRequest(CodeInvalidDelay, "%s: %s is outside [now - %s, now + %s]", f.name("deliverAt"), in.deliverAt, deliverAtSlack, lim.MaxDelay)
		}
		m.DeliverAt = t
	case in.delayLevel != "":
		if len(in.delayLevel) > 32 {
			return badRequest(CodeInvalidDelay, "%s: longer than 32 bytes", f.name("delayLevel"))
		}
		m.DelayLevel = in.delayLevel
	}
	return nil
}

func indexed(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}

func quoteShort(s string) string {
	return "\"" + truncate(strings.ToValidUTF8(s, "?"), 60) + "\""
}
