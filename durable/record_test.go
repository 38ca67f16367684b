package durable

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
)

// TestRecordRoundTrip: a message through the spool's encoding comes back
// with the same Pulsar properties, key, tags, event time, payload and due
// time, which is what makes a replay indistinguishable from the original
// send.
func TestRecordRoundTrip(t *testing.T) {
	accepted := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	tests := map[string]*produce.Message{
		"minimal": {UID: "u1", App: "a", Topic: testTopic, Payload: []byte("x"), AcceptedAt: accepted},
		"everything": {UID: "u2", App: "billing", Topic: testTopic, Key: "order-7",
			Tags: []string{"PAY_1001", "PAY_1002"}, Properties: map[string]string{"a": "1", "b": ""},
			EventTime: accepted.Add(-time.Hour), Payload: []byte{0, 1, 2, 255},
			IdempotencyKey: "k-1", DuplicateRisk: true, AcceptedAt: accepted},
		"deliver after": {UID: "u3", App: "a", Topic: testTopic, Payload: []byte("x"),
			DeliverAfter: 15 * time.Minute, AcceptedAt: accepted},
		"deliver at": {UID: "u4", App: "a", Topic: testTopic, Payload: []byte("x"),
			DeliverAt: accepted.Add(time.Hour), AcceptedAt: accepted},
		"empty payload": {UID: "u5", App: "a", Topic: testTopic, AcceptedAt: accepted},
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := toRecord(m).MarshalBinary()
			require.NoError(t, err)
			var rec spool.Record
			require.NoError(t, rec.UnmarshalBinary(b))
			got := fromRecord(rec)
			assert.Equal(t, m.PulsarProperties(), got.PulsarProperties())
			assert.Equal(t, m.UID, got.UID)
			assert.Equal(t, m.App, got.App)
			assert.Equal(t, m.Topic, got.Topic)
			assert.Equal(t, m.Key, got.Key)
			assert.Equal(t, m.Tags, got.Tags)
			assert.Equal(t, string(m.Payload), string(got.Payload))
			assert.True(t, m.EventTime.Equal(got.EventTime))
			assert.True(t, m.DueAt().Equal(got.DueAt()), "due %v, want %v", got.DueAt(), m.DueAt())
			assert.NotContains(t, got.PulsarProperties(), propDeliverAt, "record-only property leaked to Pulsar")
		})
	}
}
