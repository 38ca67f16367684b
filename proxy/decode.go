package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// The raw single-message form carries everything but the payload in headers.
const (
	HeaderKey            = "X-Key"
	HeaderTags           = "X-Tags"          // comma-separated
	HeaderProperties     = "X-Properties"    // a JSON object of strings
	HeaderPropertyPrefix = "X-Property-"     // X-Property-<name>: value; the name is lower-cased
	HeaderDeliverAfter   = "X-Deliver-After" // Go duration
	HeaderDeliverAt      = "X-Deliver-At"    // RFC 3339
	HeaderDelayLevel     = "X-Delay-Level"   // a configured level
	HeaderIdempotencyKey = "Idempotency-Key" // as in the IETF draft and Stripe's API
	HeaderEventTime      = "X-Event-Time"    // RFC 3339
	HeaderRetryPlan      = "X-Retry-Plan"    // delays separated by commas: 1s,5s,30s,2m
)

// IsBatchRequest tells the two produce forms apart: the JSON batch form is
// used when Content-Type is application/json and the query does not say
// raw=1 (or raw=true); every other request is the raw form, whose body is
// the payload.
func IsBatchRequest(r *http.Request) bool {
	if r.URL.RawQuery != "" { // parsing an empty query costs a map per request
		if raw := r.URL.Query().Get("raw"); raw != "" {
			if b, err := strconv.ParseBool(raw); err == nil && b {
				return false
			}
		}
	}
	ct := r.Header.Get("Content-Type")
	if !containsJSON(ct) {
		// Cheap refusal for the raw form's usual types: ParseMediaType
		// lower-cases ASCII only, so its result can only be
		// application/json when ct holds "json" in some letter case.
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// containsJSON reports whether s holds "json" in any ASCII letter case.
func containsJSON(s string) bool {
	for i := 0; i+4 <= len(s); i++ {
		if s[i]|0x20 == 'j' && s[i+1]|0x20 == 's' && s[i+2]|0x20 == 'o' && s[i+3]|0x20 == 'n' {
			return true
		}
	}
	return false
}

// batchRequest is the JSON batch form.
type batchRequest struct {
	Messages []batchMessage `json:"messages"`
}

type batchMessage struct {
	Payload        *string           `json:"payload"`
	PayloadBase64  *string           `json:"payloadBase64"`
	Key            string            `json:"key"`
	Tags           []string          `json:"tags"`
	Properties     map[string]string `json:"properties"`
	EventTime      string            `json:"eventTime"`
	DeliverAfter   string            `json:"deliverAfter"`
	DeliverAt      string            `json:"deliverAt"`
	DelayLevel     string            `json:"delayLevel"`
	IdempotencyKey string            `json:"idempotencyKey"`
	RetryPlan      string            `json:"retryPlan"`
}

type batchFields int

func (i batchFields) name(field string) string {
	return "messages[" + strconv.Itoa(int(i)) + "]." + field
}

// DecodeBatch decodes and validates the JSON batch form for topic (a full
// name). Every message is checked before any is returned, so a rejected
// request writes nothing. Errors are *Error with a 4xx status.
func DecodeBatch(body []byte, topic string, lim *Limits, now time.Time) ([]*produce.Message, error) {
	if int64(len(body)) > lim.MaxRequestBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, CodeRequestTooLarge,
			"the request body is larger than %d bytes; split the batch", lim.MaxRequestBytes)
	}
	if !utf8.Valid(body) {
		return nil, badRequest(CodeInvalidJSON, "the body is not valid UTF-8; send binary payloads as payloadBase64")
	}
	var req batchRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest(CodeInvalidJSON, "unexpected data after the JSON object")
	}
	switch {
	case len(req.Messages) == 0:
		return nil, badRequest(CodeEmptyBatch, `the batch has no messages: send {"messages":[{"payload":"..."}]}`)
	case len(req.Messages) > lim.MaxMessages:
		return nil, badRequest(CodeTooManyMessages, "%d messages, the limit is %d per request", len(req.Messages), lim.MaxMessages)
	}
	msgs := make([]*produce.Message, len(req.Messages))
	keys := make(map[string]int)
	for i := range req.Messages {
		bm := &req.Messages[i]
		f := batchFields(i)
		in := input{
			key: bm.Key, tags: bm.Tags, properties: bm.Properties, eventTime: bm.EventTime,
			deliverAfter: bm.DeliverAfter, deliverAt: bm.DeliverAt, delayLevel: bm.DelayLevel,
			idempotencyKey: bm.IdempotencyKey, retryPlan: bm.RetryPlan,
		}
		switch {
		case bm.Payload != nil && bm.PayloadBase64 != nil:
			return nil, badRequest(CodePayloadConflict, "%s: give payload or payloadBase64, not both", f.name("payload"))
		case bm.Payload != nil:
			in.payload, in.hasPayload = []byte(*bm.Payload), true
		case bm.PayloadBase64 != nil:
			// Checked before decoding, so a huge payload is refused cheaply.
			if int64(base64.StdEncoding.DecodedLen(len(*bm.PayloadBase64))) > lim.MaxPayloadBytes+2 {
				return nil, errorf(http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
					"%s: larger than %d bytes once decoded", f.name("payloadBase64"), lim.MaxPayloadBytes)
			}
			p, err := base64.StdEncoding.DecodeString(*bm.PayloadBase64)
			if err != nil {
				return nil, badRequest(CodeInvalidBase64, "%s: not standard base64 with padding (RFC 4648 section 4): %v", f.name("payloadBase64"), err)
			}
			in.payload, in.hasPayload = p, true
		}
		m, err := validate(&in, f, topic, lim, now)
		if err != nil {
			return nil, err
		}
		if k := m.IdempotencyKey; k != "" {
			if j, dup := keys[k]; dup {
				return nil, badRequest(CodeDuplicateIdempotencyKey, "%s: the same key as messages[%d]; every message needs its own key",
					f.name("idempotencyKey"), j)
			}
			keys[k] = i
		}
		msgs[i] = m
	}
	return msgs, nil
}

// jsonError turns an encoding/json error into an INVALID_JSON or
// UNKNOWN_FIELD error that says where the problem is.
func jsonError(err error) *Error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest(CodeInvalidJSON, "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return badRequest(CodeInvalidJSON, "%s: want %s, got a JSON %s", jsonPath(typ), jsonType(typ.Type.String()), typ.Value)
	case errors.Is(err, io.EOF):
		return badRequest(CodeInvalidJSON, `empty body: send {"messages":[{"payload":"..."}]}`)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest(CodeInvalidJSON, "the JSON ends too early")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest(CodeUnknownField, "unknown field %s; a message has payload, payloadBase64, key, tags, properties, "+
			"eventTime, deliverAfter, deliverAt, delayLevel, idempotencyKey and retryPlan "+
			"(to send a JSON document as a raw payload, add ?raw=1)", f)
	}
	return badRequest(CodeInvalidJSON, "malformed JSON: %v", err)
}

func jsonPath(e *json.UnmarshalTypeError) string {
	if e.Field == "" {
		return "the body"
	}
	return e.Field
}

func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array of strings"
	case strings.HasPrefix(goType, "map["):
		return "an object of strings"
	case strings.Contains(goType, "batchRequest"), strings.Contains(goType, "batchMessage"):
		return "an object"
	case strings.Contains(goType, "string"):
		return "a string"
	}
	return goType
}

// rawFields names header fields in errors.
type rawFields struct{}

func (rawFields) name(field string) string {
	switch field {
	case "payload":
		return "the body"
	case "key":
		return "header " + HeaderKey
	case "tags":
		return "header " + HeaderTags
	case "properties":
		return "the properties headers"
	case "eventTime":
		return "header " + HeaderEventTime
	case "deliverAfter":
		return "header " + HeaderDeliverAfter
	case "deliverAt":
		return "header " + HeaderDeliverAt
	case "delayLevel":
		return "header " + HeaderDelayLevel
	case "idempotencyKey":
		return "header " + HeaderIdempotencyKey
	case "retryPlan":
		return "header " + HeaderRetryPlan
	}
	if strings.HasPrefix(field, "tags[") {
		return "header " + HeaderTags + " " + strings.TrimPrefix(field, "tags")
	}
	return field
}

// DecodeRaw decodes and validates the raw form: body is the payload, the
// rest comes from headers. Errors are *Error with a 4xx status.
func DecodeRaw(h http.Header, body []byte, topic string, lim *Limits, now time.Time) (*produce.Message, error) {
	in := input{
		payload: body, hasPayload: true,
		key:            h.Get(HeaderKey),
		eventTime:      strings.TrimSpace(h.Get(HeaderEventTime)),
		deliverAfter:   strings.TrimSpace(h.Get(HeaderDeliverAfter)),
		deliverAt:      strings.TrimSpace(h.Get(HeaderDeliverAt)),
		delayLevel:     strings.TrimSpace(h.Get(HeaderDelayLevel)),
		idempotencyKey: strings.TrimSpace(h.Get(HeaderIdempotencyKey)),
		retryPlan:      h.Get(HeaderRetryPlan),
		hasRetryPlan:   len(h.Values(HeaderRetryPlan)) > 0,
	}
	if in.payload == nil {
		in.payload = []byte{}
	}
	for _, line := range h.Values(HeaderTags) {
		for _, t := range strings.Split(line, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				if strings.TrimSpace(line) == "" {
					continue
				}
				return nil, badRequest(CodeInvalidTag, "header %s: %q has an empty tag", HeaderTags, truncate(line, 100))
			}
			in.tags = append(in.tags, t)
		}
	}
	props, err := rawProperties(h)
	if err != nil {
		return nil, err
	}
	in.properties = props
	return validate(&in, rawFields{}, topic, lim, now)
}

// rawProperties collects X-Properties (a JSON object of strings) and every
// X-Property-<name> header. Header names reach us canonicalised
// (X-Property-Order-Id), so the name is lower-cased ("order-id"); use
// X-Properties for names whose case matters.
func rawProperties(h http.Header) (map[string]string, error) {
	var props map[string]string
	if v := h.Get(HeaderProperties); v != "" {
		if !utf8.ValidString(v) {
			return nil, badRequest(CodeInvalidProperty, "header %s: not valid UTF-8", HeaderProperties)
		}
		dec := json.NewDecoder(strings.NewReader(v))
		if err := dec.Decode(&props); err != nil {
			return nil, badRequest(CodeInvalidProperty, "header %s: want a JSON object of strings, such as {\"orderId\":\"42\"}", HeaderProperties)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, badRequest(CodeInvalidProperty, "header %s: unexpected data after the JSON object", HeaderProperties)
		}
	}
	for name, vals := range h {
		canon := textproto.CanonicalMIMEHeaderKey(name)
		rest, ok := strings.CutPrefix(canon, HeaderPropertyPrefix)
		if !ok {
			continue
		}
		key := strings.ToLower(rest)
		if len(vals) != 1 {
			return nil, badRequest(CodeInvalidProperty, "header %s%s: given %d times", HeaderPropertyPrefix, rest, len(vals))
		}
		if props == nil {
			props = make(map[string]string)
		}
		if _, dup := props[key]; dup {
			return nil, badRequest(CodeInvalidProperty, "property %q is given twice (in %s and as a header, or in two letter cases)", truncate(key, 60), HeaderProperties)
		}
		props[key] = vals[0]
	}
	return props, nil
}
