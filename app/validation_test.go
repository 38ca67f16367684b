package app

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// TestValidationErrors: every malformed request gets its status and stable
// code, and none writes anything.
func TestValidationErrors(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Limits.MaxMessagesPerRequest = 3
		c.Limits.MaxPayloadBytes = 1024
		c.Limits.MaxRequestBytes = 4096
		c.Limits.MaxTags = 2
		c.Limits.MaxProperties = 2
	})
	p, full := newTopic(t)
	msg := func(fields string) string { return `{"messages":[{"payload":"x"` + fields + `}]}` }
	big := strings.Repeat("a", 1025)

	for _, tc := range []struct {
		name   string
		path   string // default: p
		header http.Header
		body   string
		status int
		code   string
	}{
		{name: "malformed JSON", body: `{"messages":[`, status: 400, code: proxy.CodeInvalidJSON},
		{name: "not an object", body: `[1,2]`, status: 400, code: proxy.CodeInvalidJSON},
		{name: "wrong type", body: `{"messages":[{"payload":1}]}`, status: 400, code: proxy.CodeInvalidJSON},
		{name: "trailing data", body: msg(``) + `{}`, status: 400, code: proxy.CodeInvalidJSON},
		{name: "invalid UTF-8", body: "{\"messages\":[{\"payload\":\"\xff\"}]}", status: 400, code: proxy.CodeInvalidJSON},
		{name: "empty body", body: ``, status: 400, code: proxy.CodeInvalidJSON},
		{name: "unknown top-level field", body: `{"messages":[{"payload":"x"}],"topic":"y"}`, status: 400, code: proxy.CodeUnknownField},
		{name: "unknown message field", body: msg(`,"priority":1`), status: 400, code: proxy.CodeUnknownField},
		{name: "empty batch", body: `{"messages":[]}`, status: 400, code: proxy.CodeEmptyBatch},
		{name: "no messages", body: `{}`, status: 400, code: proxy.CodeEmptyBatch},
		{name: "too many messages", body: `{"messages":[{"payload":"1"},{"payload":"2"},{"payload":"3"},{"payload":"4"}]}`, status: 400, code: proxy.CodeTooManyMessages},
		{name: "invalid tenant", path: "pay$/settle/x", body: msg(``), status: 400, code: proxy.CodeInvalidTopic},
		{name: "invalid topic", path: "pay/settle/a%20b", body: msg(``), status: 400, code: proxy.CodeInvalidTopic},
		{name: "dot-dot topic", path: "pay/settle/..", body: msg(``), status: 400, code: proxy.CodeInvalidTopic},
		{name: "payload missing", body: `{"messages":[{"key":"k"}]}`, status: 400, code: proxy.CodePayloadMissing},
		{name: "payload and base64", body: `{"messages":[{"payload":"x","payloadBase64":"eA=="}]}`, status: 400, code: proxy.CodePayloadConflict},
		{name: "bad base64", body: `{"messages":[{"payloadBase64":"not base64!"}]}`, status: 400, code: proxy.CodeInvalidBase64},
		{name: "key too long", body: msg(`,"key":"` + strings.Repeat("k", 257) + `"`), status: 400, code: proxy.CodeInvalidKey},
		{name: "invalid tag", body: msg(`,"tags":["PAY 1001"]`), status: 400, code: proxy.CodeInvalidTag},
		{name: "comma in tag", body: msg(`,"tags":["A,B"]`), status: 400, code: proxy.CodeInvalidTag},
		{name: "empty tag", body: msg(`,"tags":[""]`), status: 400, code: proxy.CodeInvalidTag},
		{name: "too many tags", body: msg(`,"tags":["A","B","C"]`), status: 400, code: proxy.CodeTooManyTags},
		{name: "reserved property", body: msg(`,"properties":{"psc-uid":"forged"}`), status: 400, code: proxy.CodeReservedProperty},
		{name: "reserved property any case", body: msg(`,"properties":{"PSC-App":"forged"}`), status: 400, code: proxy.CodeReservedProperty},
		{name: "too many properties", body: msg(`,"properties":{"a":"1","b":"2","c":"3"}`), status: 400, code: proxy.CodeTooManyProperties},
		{name: "empty property name", body: msg(`,"properties":{"":"1"}`), status: 400, code: proxy.CodeInvalidProperty},
		{name: "property name too long", body: msg(`,"properties":{"` + strings.Repeat("n", 129) + `":"1"}`), status: 400, code: proxy.CodeInvalidProperty},
		{name: "property value too long", body: msg(`,"properties":{"a":"` + strings.Repeat("v", 4097) + `"}`), status: 413, code: proxy.CodeRequestTooLarge},
		{name: "event time not RFC 3339", body: msg(`,"eventTime":"2025-03-01 12:00"`), status: 400, code: proxy.CodeInvalidEventTime},
		{name: "event time before 1970", body: msg(`,"eventTime":"1969-12-31T23:59:59Z"`), status: 400, code: proxy.CodeInvalidEventTime},
		{name: "deliverAfter not a duration", body: msg(`,"deliverAfter":"soon"`), status: 400, code: proxy.CodeInvalidDelay},
		{name: "deliverAfter negative", body: msg(`,"deliverAfter":"-1s"`), status: 400, code: proxy.CodeInvalidDelay},
		{name: "deliverAfter too far", body: msg(`,"deliverAfter":"721h"`), status: 400, code: proxy.CodeInvalidDelay},
		{name: "deliverAt not RFC 3339", body: msg(`,"deliverAt":"tomorrow"`), status: 400, code: proxy.CodeInvalidDelay},
		{name: "deliverAt in the past", body: msg(`,"deliverAt":"2020-01-01T00:00:00Z"`), status: 400, code: proxy.CodeInvalidDelay},
		{name: "deliverAt too far", body: msg(`,"deliverAt":"2999-01-01T00:00:00Z"`), status: 400, code: proxy.CodeInvalidDelay},
		{name: "two delays", body: msg(`,"deliverAfter":"1m","deliverAt":"2999-01-01T00:00:00Z"`), status: 400, code: proxy.CodeDelayConflict},
		{name: "unknown delay level", body: msg(`,"delayLevel":"30s"`), status: 400, code: proxy.CodeInvalidDelay},
		{name: "idempotency key with space", body: msg(`,"idempotencyKey":"a b"`), status: 400, code: proxy.CodeInvalidIdempotencyKey},
		{name: "idempotency key too long", body: msg(`,"idempotencyKey":"` + strings.Repeat("k", 256) + `"`), status: 400, code: proxy.CodeInvalidIdempotencyKey},
		{name: "repeated idempotency key", body: `{"messages":[{"payload":"1","idempotencyKey":"k"},{"payload":"2","idempotencyKey":"k"}]}`, status: 400, code: proxy.CodeDuplicateIdempotencyKey},
		{name: "payload too large", body: `{"messages":[{"payload":"` + big + `"}]}`, status: 413, code: proxy.CodePayloadTooLarge},
		{name: "base64 payload too large", body: `{"messages":[{"payloadBase64":"` + base64.StdEncoding.EncodeToString([]byte(big)) + `"}]}`, status: 413, code: proxy.CodePayloadTooLarge},
		{name: "request too large", body: `{"messages":[{"payload":"` + strings.Repeat("a", 4100) + `"}]}`, status: 413, code: proxy.CodeRequestTooLarge},
		{name: "one bad message spoils the batch", body: `{"messages":[{"payload":"good"},{"payload":"bad","tags":["no spaces"]}]}`, status: 400, code: proxy.CodeInvalidTag},

		{name: "Idempotency-Key header on a JSON batch", header: jsonHeader(proxy.HeaderIdempotencyKey, "k"), body: msg(``), status: 400, code: proxy.CodeInvalidIdempotencyKey},

		{name: "raw payload too large", header: http.Header{}, body: big, status: 413, code: proxy.CodePayloadTooLarge},
		{name: "raw bad tags", header: http.Header{proxy.HeaderTags: {"A,,B"}}, body: "x", status: 400, code: proxy.CodeInvalidTag},
		{name: "raw bad properties JSON", header: http.Header{proxy.HeaderProperties: {`{"a":1}`}}, body: "x", status: 400, code: proxy.CodeInvalidProperty},
		{name: "raw property twice", header: http.Header{proxy.HeaderProperties: {`{"a":"1"}`}, "X-Property-A": {"2"}}, body: "x", status: 400, code: proxy.CodeInvalidProperty},
		{name: "raw reserved property", header: http.Header{"X-Property-Psc-Uid": {"forged"}}, body: "x", status: 400, code: proxy.CodeReservedProperty},
		{name: "raw bad delay", header: http.Header{proxy.HeaderDeliverAfter: {"later"}}, body: "x", status: 400, code: proxy.CodeInvalidDelay},
		{name: "raw unknown delay level", header: http.Header{proxy.HeaderDelayLevel: {"30s"}}, body: "x", status: 400, code: proxy.CodeInvalidDelay},
		{name: "raw bad event time", header: http.Header{proxy.HeaderEventTime: {"yesterday"}}, body: "x", status: 400, code: proxy.CodeInvalidEventTime},
		{name: "raw bad idempotency key", header: http.Header{proxy.HeaderIdempotencyKey: {"é"}}, body: "x", status: 400, code: proxy.CodeInvalidIdempotencyKey},
		{name: "raw key not UTF-8", header: http.Header{proxy.HeaderKey: {"\xff"}}, body: "x", status: 400, code: proxy.CodeInvalidKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := p
			if tc.path != "" {
				path = tc.path
			}
			hdr := tc.header
			if hdr == nil {
				hdr = jsonHeader()
			}
			res := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", hdr, []byte(tc.body))
			require.Equal(t, tc.status, res.Status, res.Raw)
			require.NotNil(t, res.Error, res.Raw)
			assert.Equal(t, tc.code, res.Error.Code, res.Error.Message)
			assert.NotEmpty(t, res.Error.Message)
			assert.Empty(t, res.Results)
		})
	}

	t.Run("routing", func(t *testing.T) {
		res := h.do(http.MethodGet, "/v1/topics/"+p+"/messages", nil, nil)
		assert.Equal(t, http.StatusMethodNotAllowed, res.Status, res.Raw)
		assert.Equal(t, proxy.CodeMethodNotAllowed, res.code())
		res = h.do(http.MethodPost, "/v1/topics/a/b/messages", jsonHeader(), []byte(msg(``)))
		assert.Equal(t, http.StatusNotFound, res.Status, res.Raw)
		assert.Equal(t, proxy.CodeNotFound, res.code())
	})

	assert.Empty(t, h.readAll(full), "no rejected request wrote anything")
}
