package app

import (
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// TestProduceJSONRoundTrip: what the JSON batch form carries reaches a
// native consumer unchanged, with the psc-* properties beside the user's.
func TestProduceJSONRoundTrip(t *testing.T) {
	h := start(t, nil)
	p, full := newTopic(t)
	cons := h.subscribe(full)

	binary := []byte{0, 1, 2, 0xff, 0xfe, '\n'}
	res := h.produceJSON(p, `{"messages":[
		{"payload":"héllo {\"amount\":42}","key":"order-42","tags":["PAY_1002","PAY_1001","PAY_1001"],
		 "properties":{"orderId":"42","Currency":"EUR","empty":""},"eventTime":"2025-03-01T12:00:00.123+01:00",
		 "idempotencyKey":"order-42-charge"},
		{"payloadBase64":"`+base64.StdEncoding.EncodeToString(binary)+`"}
	]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Len(t, res.Results, 2)
	for _, r := range res.Results {
		assert.Equal(t, produce.StatusPersisted, r.Status)
		assert.Equal(t, "primary", r.Cluster)
		assert.NotEmpty(t, r.UID)
		assert.NotEmpty(t, r.MessageID)
		assert.False(t, r.Duplicate)
		assert.False(t, r.DuplicateRisk)
	}
	// A keyed message's uid is name-based (version 5: the same for every
	// attempt, ADR 030); others are time-ordered UUIDv7s.
	assert.Equal(t, byte('5'), res.Results[0].UID[14], res.Results[0].UID)
	assert.Equal(t, byte('7'), res.Results[1].UID[14], res.Results[1].UID)

	m := receive(t, cons)
	assert.Equal(t, "héllo {\"amount\":42}", string(m.Payload()))
	assert.Equal(t, "order-42", m.Key())
	assert.True(t, m.EventTime().Equal(time.Date(2025, 3, 1, 11, 0, 0, 123e6, time.UTC)), "event time %v (%d)", m.EventTime(), m.EventTime().UnixMilli())
	props := m.Properties()
	acceptedAt, err := time.Parse(produce.AcceptedAtLayout, props[produce.PropAcceptedAt])
	require.NoError(t, err, "psc-accepted-at %q", props[produce.PropAcceptedAt])
	assert.WithinDuration(t, time.Now(), acceptedAt, time.Minute)
	delete(props, produce.PropAcceptedAt)
	assert.Equal(t, map[string]string{
		"orderId": "42", "Currency": "EUR", "empty": "",
		produce.PropUID:            res.Results[0].UID,
		produce.PropApp:            "dev",
		produce.PropTags:           "PAY_1001,PAY_1002",
		produce.PropIdempotencyKey: "order-42-charge",
	}, props)
	assert.Equal(t, []string{"PAY_1001", "PAY_1002"}, wire.ParseTags(m.Properties()[produce.PropTags]))
	assert.Equal(t, res.Results[0].MessageID, wire.FormatMessageID(m.ID()), "messageId names the stored message")

	m = receive(t, cons)
	assert.Equal(t, binary, m.Payload())
	assert.Empty(t, m.Key())
	assert.Zero(t, m.EventTime().UnixMilli(), "no event time: pulsar-client-go reports the Unix epoch")
	assert.Equal(t, res.Results[1].UID, m.Properties()[produce.PropUID])
	assert.NotContains(t, m.Properties(), produce.PropTags)
	assert.Equal(t, res.Results[1].MessageID, wire.FormatMessageID(m.ID()))

	assert.Equal(t, []tracer.Type{tracer.Accepted, tracer.Persisted}, h.rec.types(res.Results[0].UID))
}

// TestProduceRawRoundTrip: the raw form, body as payload and the rest in
// headers, reaches a native consumer unchanged.
func TestProduceRawRoundTrip(t *testing.T) {
	h := start(t, nil)
	p, full := newTopic(t)
	cons := h.subscribe(full)

	payload := []byte("\x00raw bytes \xff, not UTF-8")
	hdr := http.Header{
		"Content-Type":             {"application/octet-stream"},
		proxy.HeaderKey:            {"order-7"},
		proxy.HeaderTags:           {"PAY_1001, REFUND", "PAY_1001"},
		"X-Property-Order-Id":      {"7"},
		proxy.HeaderProperties:     {`{"CaseSensitive":"yes"}`},
		proxy.HeaderEventTime:      {"2025-03-01T12:00:00.5Z"},
		proxy.HeaderIdempotencyKey: {"raw-7"},
	}
	res := h.do(http.MethodPost, "/v1/topics/"+p+"/messages", hdr, payload)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	require.Len(t, res.Results, 1)

	m := receive(t, cons)
	assert.Equal(t, payload, m.Payload())
	assert.Equal(t, "order-7", m.Key())
	assert.True(t, m.EventTime().Equal(time.Date(2025, 3, 1, 12, 0, 0, 5e8, time.UTC)), "event time %v", m.EventTime())
	props := m.Properties()
	assert.Equal(t, "7", props["order-id"])
	assert.Equal(t, "yes", props["CaseSensitive"])
	assert.Equal(t, "PAY_1001,REFUND", props[produce.PropTags])
	assert.Equal(t, "raw-7", props[produce.PropIdempotencyKey])
	assert.Equal(t, res.Results[0].UID, props[produce.PropUID])
	assert.Equal(t, res.Results[0].MessageID, wire.FormatMessageID(m.ID()))

	// A JSON document as a raw payload: ?raw=1 overrides the content type.
	res = h.do(http.MethodPost, "/v1/topics/"+p+"/messages?raw=1", jsonHeader(), []byte(`{"messages":"not a batch"}`))
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	assert.Equal(t, `{"messages":"not a batch"}`, string(receive(t, cons).Payload()))

	// Without Content-Type (curl --data-binary, PHP's default form type) it is raw too.
	res = h.do(http.MethodPost, "/v1/topics/"+p+"/messages", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte("a=b"))
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	assert.Equal(t, "a=b", string(receive(t, cons).Payload()))
}

// TestProduceBatchKeepsOrder: a batch's messages reach the topic in request order.
func TestProduceBatchKeepsOrder(t *testing.T) {
	h := start(t, nil)
	p, full := newTopic(t)
	body := `{"messages":[`
	for i := range 50 {
		if i > 0 {
			body += ","
		}
		body += `{"payload":"m` + string(rune('A'+i%26)) + string(rune('a'+i/26)) + `","key":"same"}`
	}
	body += `]}`
	res := h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	msgs := h.readAll(full)
	require.Len(t, msgs, 50)
	for i, m := range msgs {
		assert.Equal(t, res.Results[i].UID, m.Properties()[produce.PropUID], "message %d", i)
	}
}

// TestNativeDelay: with delay.mode native, deliverAfter goes to Pulsar's
// native delayed delivery; the answer says scheduled, and a Shared
// consumer gets it when due.
func TestNativeDelay(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Delay.Mode = "native" })
	p, full := newTopic(t)
	cons := h.subscribe(full)
	before := time.Now()
	res := h.produceJSON(p, `{"messages":[{"payload":"later","deliverAfter":"300ms"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	r := res.Results[0]
	assert.Equal(t, produce.StatusScheduled, r.Status)
	due, err := time.Parse(time.RFC3339Nano, r.DeliverAt)
	require.NoError(t, err)
	assert.WithinDuration(t, before.Add(300*time.Millisecond), due, 250*time.Millisecond)
	m := receive(t, cons)
	assert.Equal(t, "later", string(m.Payload()))
	assert.False(t, time.Now().Before(due.Add(-10*time.Millisecond)), "delivered before it was due")
	assert.ElementsMatch(t, []tracer.Type{tracer.Accepted, tracer.Persisted, tracer.Scheduled}, h.rec.types(r.UID),
		"one scheduled event (the delay engine's), not two")
}
