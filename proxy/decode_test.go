package proxy

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const testTopic = "persistent://pay/settle/orders"

func TestDecodeBatch(t *testing.T) {
	lim := DefaultLimits()
	for _, tc := range []struct {
		name string
		body string
		want []*produce.Message
	}{
		{
			name: "everything",
			body: `{"messages":[{"payload":"p","key":"k","tags":["B","A","B"],"properties":{"x":"1"},
				"eventTime":"2025-03-01T13:00:00.250+01:00","deliverAfter":"15m","idempotencyKey":"id-1"}]}`,
			want: []*produce.Message{{Topic: testTopic, Payload: []byte("p"), Key: "k", Tags: []string{"A", "B"},
				Properties: map[string]string{"x": "1"}, EventTime: time.Date(2025, 3, 1, 12, 0, 0, 250e6, time.UTC),
				DeliverAfter: 15 * time.Minute, IdempotencyKey: "id-1"}},
		},
		{
			name: "base64 and empty payload",
			body: `{"messages":[{"payloadBase64":"AP8="},{"payload":""}]}`,
			want: []*produce.Message{{Topic: testTopic, Payload: []byte{0, 0xff}}, {Topic: testTopic, Payload: []byte{}}},
		},
		{
			name: "deliverAt slightly in the past is accepted",
			body: `{"messages":[{"payload":"p","deliverAt":"2025-03-01T11:59:30Z"}]}`,
			want: []*produce.Message{{Topic: testTopic, Payload: []byte("p"), DeliverAt: testNow.Add(-30 * time.Second)}},
		},
		{
			name: "nulls are absent",
			body: `{"messages":[{"payload":"p","key":null,"tags":null,"properties":null}]}`,
			want: []*produce.Message{{Topic: testTopic, Payload: []byte("p")}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeBatch([]byte(tc.body), testTopic, &lim, testNow)
			require.NoError(t, err)
			require.Len(t, got, len(tc.want))
			for i := range got {
				assert.True(t, tc.want[i].EventTime.Equal(got[i].EventTime))
				assert.True(t, tc.want[i].DeliverAt.Equal(got[i].DeliverAt))
				got[i].EventTime, got[i].DeliverAt = tc.want[i].EventTime, tc.want[i].DeliverAt
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDecodeRaw(t *testing.T) {
	lim := DefaultLimits()
	h := http.Header{}
	h.Set(HeaderKey, "k")
	h.Add(HeaderTags, " B , A")
	h.Add(HeaderTags, "C")
	h.Set("X-Property-Order-ID", "42")
	h.Set(HeaderProperties, `{"Mixed":"case"}`)
	h.Set(HeaderDeliverAt, "2025-03-01T12:15:00Z")
	h.Set(HeaderIdempotencyKey, "id")
	h.Set(HeaderEventTime, "2025-03-01T11:00:00Z")
	m, err := DecodeRaw(h, []byte("body"), testTopic, &lim, testNow)
	require.NoError(t, err)
	assert.Equal(t, &produce.Message{Topic: testTopic, Payload: []byte("body"), Key: "k", Tags: []string{"A", "B", "C"},
		Properties: map[string]string{"order-id": "42", "Mixed": "case"}, EventTime: m.EventTime,
		DeliverAt: m.DeliverAt, IdempotencyKey: "id"}, m)
	assert.True(t, m.EventTime.Equal(testNow.Add(-time.Hour)))
	assert.True(t, m.DeliverAt.Equal(testNow.Add(15*time.Minute)))

	m, err = DecodeRaw(http.Header{}, nil, testTopic, &lim, testNow)
	require.NoError(t, err)
	assert.Equal(t, []byte{}, m.Payload, "an empty body is an empty payload")
}

func TestIsBatchRequest(t *testing.T) {
	for _, tc := range []struct {
		target, contentType string
		want                bool
	}{
		{"/x", "application/json", true},
		{"/x", "application/json; charset=utf-8", true},
		{"/x", "Application/JSON", true},
		{"/x?raw=1", "application/json", false},
		{"/x?raw=true", "application/json", false},
		{"/x?raw=0", "application/json", true},
		{"/x", "", false},
		{"/x", "text/plain", false},
		{"/x", "application/octet-stream", false},
		{"/x", "application/x-www-form-urlencoded", false},
		{"/x", "application/jsonx", false},
		{"/x", "APPLICATION/JSON ; charset=utf-8", true},
		{"/x", " application/json", true},
		{"/x", "application/json;", true},
		{"/x", "text/json", false},
		{"/x", "application/js", false},
		{"/x?other=1", "application/json", true},
		{"/x?raw=yes", "application/json", true},
	} {
		r := httptest.NewRequest(http.MethodPost, tc.target, nil)
		if tc.contentType != "" {
			r.Header.Set("Content-Type", tc.contentType)
		}
		assert.Equal(t, tc.want, IsBatchRequest(r), "%s %q", tc.target, tc.contentType)
		assert.Equal(t, tc.want, isBatchReference(r), "%s %q", tc.target, tc.contentType)
	}
}

// isBatchReference is IsBatchRequest without its shortcuts: the rule as
// the README states it.
func isBatchReference(r *http.Request) bool {
	if raw := r.URL.Query().Get("raw"); raw != "" {
		if b, err := strconv.ParseBool(raw); err == nil && b {
			return false
		}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// FuzzIsBatchRequest: the shortcuts never change the answer.
func FuzzIsBatchRequest(f *testing.F) {
	for _, s := range []string{"application/json", "Application/JSON; charset=utf-8", "application/octet-stream", "", "text/json", "application/json;", "a/b; x=\"json\""} {
		f.Add(s, "")
		f.Add(s, "raw=1")
	}
	f.Fuzz(func(t *testing.T, contentType, query string) {
		r := &http.Request{URL: &url.URL{Path: "/x", RawQuery: query}, Header: http.Header{"Content-Type": {contentType}}}
		require.Equal(t, isBatchReference(r), IsBatchRequest(r), "%q %q", contentType, query)
	})
}

// TestDecodeErrorsSayWhere: error messages name the message and field.
func TestDecodeErrorsSayWhere(t *testing.T) {
	lim := DefaultLimits()
	for body, want := range map[string]string{
		`{"messages":[{"payload":"a"},{"payload":"b","tags":["ok","not ok"]}]}`: `messages[1].tags[1]: "not ok"`,
		`{"messages":[{"payload":"a","properties":{"psc-x":"1"}}]}`:             `messages[0].properties["psc-x"]`,
		`{"messages":[{"payload":1}]}`:                                          `messages.payload`,
		`{"messages":[{"payload":"a","foo":1}]}`:                                `unknown field "foo"`,
		`{"messages":[{"payload":"a","deliverAfter":"1m","deliverAt":"x"}]}`:    `messages[0].deliverAfter, messages[0].deliverAt`,
	} {
		_, err := DecodeBatch([]byte(body), testTopic, &lim, testNow)
		var e *Error
		require.True(t, errors.As(err, &e), body)
		assert.Contains(t, e.Message, want, body)
	}
}

func TestTopicName(t *testing.T) {
	full, err := TopicName("pay", "settle-eu", "orders.v2_a=b:c")
	require.NoError(t, err)
	assert.Equal(t, "persistent://pay/settle-eu/orders.v2_a=b:c", full)
	for _, bad := range [][3]string{{"", "n", "t"}, {"t", "n s", "t"}, {"t", "n", "a/b"}, {"t", "n", ".."}, {"t", "n", "é"},
		{"t", "n", string(make([]byte, 81))}} {
		_, err := TopicName(bad[0], bad[1], bad[2])
		var e *Error
		require.True(t, errors.As(err, &e), "%q", bad)
		assert.Equal(t, CodeInvalidTopic, e.Code)
	}
}

// encodeBatch writes messages back in the JSON batch form, for the fuzz
// tests' round-trip invariant.
func encodeBatch(t testing.TB, msgs []*produce.Message) []byte {
	type jm struct {
		PayloadBase64  string            `json:"payloadBase64"`
		Key            string            `json:"key,omitempty"`
		Tags           []string          `json:"tags,omitempty"`
		Properties     map[string]string `json:"properties,omitempty"`
		EventTime      string            `json:"eventTime,omitempty"`
		DeliverAfter   string            `json:"deliverAfter,omitempty"`
		DeliverAt      string            `json:"deliverAt,omitempty"`
		DelayLevel     string            `json:"delayLevel,omitempty"`
		IdempotencyKey string            `json:"idempotencyKey,omitempty"`
	}
	var req struct {
		Messages []jm `json:"messages"`
	}
	for _, m := range msgs {
		j := jm{PayloadBase64: base64.StdEncoding.EncodeToString(m.Payload), Key: m.Key, Tags: m.Tags,
			Properties: m.Properties, DelayLevel: m.DelayLevel, IdempotencyKey: m.IdempotencyKey}
		if !m.EventTime.IsZero() {
			j.EventTime = m.EventTime.Format(time.RFC3339Nano)
		}
		if m.DeliverAfter != 0 {
			j.DeliverAfter = m.DeliverAfter.String()
		}
		if !m.DeliverAt.IsZero() {
			j.DeliverAt = m.DeliverAt.Format(time.RFC3339Nano)
		}
		req.Messages = append(req.Messages, j)
	}
	b, err := json.Marshal(req)
	require.NoError(t, err)
	return b
}

func TestDecodeRetryPlan(t *testing.T) {
	lim := DefaultLimits()
	m, err := DecodeBatch([]byte(`{"messages":[{"payload":"p","retryPlan":" 1s, 5s,30s , 2m0s"}]}`), testTopic, &lim, testNow)
	require.NoError(t, err)
	assert.Equal(t, "1s,5s,30s,2m", m[0].RetryPlan, "kept in its normal form")
	m[0].UID, m[0].App, m[0].AcceptedAt = "u", "a", testNow
	assert.Equal(t, "1s,5s,30s,2m", m[0].PulsarProperties()[produce.PropRetryPlan])

	h := http.Header{}
	h.Set(HeaderRetryPlan, "1s,2s")
	raw, err := DecodeRaw(h, []byte("p"), testTopic, &lim, testNow)
	require.NoError(t, err)
	assert.Equal(t, "1s,2s", raw.RetryPlan)

	none, err := DecodeRaw(http.Header{}, []byte("p"), testTopic, &lim, testNow)
	require.NoError(t, err)
	assert.Empty(t, none.RetryPlan)
	assert.NotContains(t, none.PulsarProperties(), produce.PropRetryPlan)

	for plan, want := range map[string]string{
		`"abc"`:     `messages[0].retryPlan: invalid retry plan "abc": 0: step 1: "abc" is not a duration`,
		`"1s,,2s"`:  `step 2: empty step`,
		`"1s,-5s"`:  `step 2: "-5s" is not positive`,
		`"1s,0s"`:   `"0s" is not positive`,
		`"9000h"`:   `is longer than`,
		`" "`:       `empty; want delays separated by commas`,
		`"1s, 2x"`:  `4: step 2: "2x" is not a duration`,
		`"1s,2s,"`:  `step 3: empty step`,
		`"100000h"`: `longer than`,
	} {
		_, err := DecodeBatch([]byte(`{"messages":[{"payload":"p","retryPlan":`+plan+`}]}`), testTopic, &lim, testNow)
		var e *Error
		require.True(t, errors.As(err, &e), plan)
		assert.Equal(t, http.StatusBadRequest, e.Status, plan)
		assert.Equal(t, CodeInvalidRetryPlan, e.Code, plan)
		assert.Contains(t, e.Message, want, plan)
	}
	for _, v := range []string{"", "soon"} {
		h := http.Header{}
		h.Set(HeaderRetryPlan, v)
		_, err := DecodeRaw(h, []byte("p"), testTopic, &lim, testNow)
		var e *Error
		require.True(t, errors.As(err, &e), "%q", v)
		assert.Equal(t, CodeInvalidRetryPlan, e.Code)
		assert.Contains(t, e.Message, "header "+HeaderRetryPlan)
	}
}

func TestFingerprintCoversRetryPlan(t *testing.T) {
	a := &produce.Message{Topic: testTopic, Payload: []byte("p")}
	b := *a
	b.RetryPlan = "1s,2s"
	c := b
	c.RetryPlan = "1s,3s"
	assert.NotEqual(t, a.Fingerprint(), b.Fingerprint())
	assert.NotEqual(t, b.Fingerprint(), c.Fingerprint())
}
