package proxy

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/tagfilter"
)

// fuzzLimits are small, so the fuzzer reaches every limit.
func fuzzLimits() Limits {
	l := DefaultLimits()
	l.MaxPayloadBytes = 64
	l.MaxRequestBytes = 4096
	l.MaxMessages = 4
	l.MaxTags = 3
	l.MaxProperties = 3
	l.MaxKeyBytes = 16
	l.MaxPropertyKeyBytes = 16
	l.MaxPropertyValueBytes = 16
	l.MaxIdempotencyKeyBytes = 16
	return l
}

// checkDecoded asserts what every accepted message satisfies, and that
// writing the messages back as a JSON batch decodes to the same messages
// with the same fingerprints.
func checkDecoded(t *testing.T, lim *Limits, msgs []*produce.Message) {
	for _, m := range msgs {
		require.LessOrEqual(t, int64(len(m.Payload)), lim.MaxPayloadBytes)
		require.LessOrEqual(t, len(m.Tags), lim.MaxTags)
		require.True(t, slices.IsSorted(m.Tags))
		require.Len(t, slices.Compact(slices.Clone(m.Tags)), len(m.Tags), "tags are deduplicated")
		for _, tag := range m.Tags {
			require.NoError(t, tagfilter.ValidTag(tag))
		}
		require.LessOrEqual(t, len(m.Properties), lim.MaxProperties)
		for k := range m.Properties {
			require.NotEmpty(t, k)
		}
		delays := 0
		for _, set := range []bool{m.DeliverAfter != 0, !m.DeliverAt.IsZero(), m.DelayLevel != ""} {
			if set {
				delays++
			}
		}
		require.LessOrEqual(t, delays, 1)
		props := m.PulsarProperties()
		require.Equal(t, len(m.Properties)+2+btoi(len(m.Tags) > 0)+btoi(m.IdempotencyKey != "")+1, len(props),
			"user properties never collide with psc-* ones")
	}
	again, err := DecodeBatch(encodeBatch(t, msgs), testTopic, lim, testNow)
	require.NoError(t, err, "re-encoded messages decode")
	require.Len(t, again, len(msgs))
	for i := range msgs {
		require.Equal(t, msgs[i].Fingerprint(), again[i].Fingerprint(), "message %d", i)
		require.Equal(t, msgs[i].Payload, again[i].Payload)
		require.Equal(t, msgs[i].Tags, again[i].Tags)
		require.Equal(t, msgs[i].Properties, again[i].Properties)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkRejected asserts that an error is a client error with a code.
func checkRejected(t *testing.T, err error) {
	var e *Error
	require.True(t, errors.As(err, &e), "error %v is not an *Error", err)
	require.True(t, e.Status >= 400 && e.Status < 500, "status %d for %v", e.Status, e)
	require.NotEmpty(t, e.Code)
	require.NotEmpty(t, e.Message)
}

func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"payload":"p","key":"k","tags":["B","A"],"properties":{"x":"1"},"eventTime":"2025-03-01T12:00:00Z","deliverAfter":"15m","idempotencyKey":"i"}]}`,
		`{"messages":[{"payloadBase64":"AP8="},{"payload":"","deliverAt":"2025-03-01T12:30:00+02:00"}]}`,
		`{"messages":[{"payload":"p","delayLevel":"30s"}]}`,
		`{"messages":[{"payload":"p","properties":{"psc-uid":"x"}}]}`,
		`{"messages":[{"payload":"p","payloadBase64":"eA=="}]}`,
		`{"messages":[]}`, `{}`, `[]`, `null`, ``, `{"messages":[{"payload":"a"}]} x`,
		`{"messages":[{"payload":"a","idempotencyKey":"k"},{"payload":"b","idempotencyKey":"k"}]}`,
	} {
		f.Add([]byte(s))
	}
	lim := fuzzLimits()
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := DecodeBatch(body, testTopic, &lim, testNow)
		if err != nil {
			checkRejected(t, err)
			return
		}
		require.NotEmpty(t, msgs)
		require.LessOrEqual(t, len(msgs), lim.MaxMessages)
		checkDecoded(t, &lim, msgs)
	})
}

func FuzzDecodeRaw(f *testing.F) {
	f.Add([]byte("payload"), "k", "A,B", `{"x":"1"}`, "Order-Id", "42", "2025-03-01T12:00:00Z", "15m", "", "", "id")
	f.Add([]byte{0, 0xff}, "", "", "", "", "", "", "", "2025-03-01T12:15:00Z", "", "")
	f.Add([]byte(""), "", " A , ,B", `{"a":1}`, "Psc-Uid", "x", "yesterday", "-1s", "x", "30s", "a b")
	f.Add([]byte("x"), "\xff", "A", `{"x":"1"}`, "X", "2", "", "1m", "2025-03-01T12:15:00Z", "", "")
	lim := fuzzLimits()
	f.Fuzz(func(t *testing.T, body []byte, key, tags, propsJSON, propName, propValue, eventTime, deliverAfter, deliverAt, delayLevel, idemKey string) {
		h := http.Header{}
		set := func(name, v string) {
			if v != "" {
				h[name] = []string{v}
			}
		}
		set(HeaderKey, key)
		set(HeaderTags, tags)
		set(HeaderProperties, propsJSON)
		set(HeaderPropertyPrefix+propName, propValue)
		set(HeaderEventTime, eventTime)
		set(HeaderDeliverAfter, deliverAfter)
		set(HeaderDeliverAt, deliverAt)
		set(HeaderDelayLevel, delayLevel)
		set(HeaderIdempotencyKey, idemKey)
		m, err := DecodeRaw(h, body, testTopic, &lim, testNow)
		if err != nil {
			checkRejected(t, err)
			return
		}
		require.Equal(t, string(body), string(m.Payload))
		checkDecoded(t, &lim, []*produce.Message{m})
	})
}
