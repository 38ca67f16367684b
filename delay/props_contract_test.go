package delay_test

import (
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/delay"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// The contract between the produce path and delayed delivery: delay repeats
// proxy's property names and message id format (proxy imports delay, so
// delay cannot import proxy). If this test fails, one side changed a name
// the other relies on: consumers would see a delayed message without its
// uid, app or tags.
func TestPropertyNamesMatchProxy(t *testing.T) {
	require.Equal(t, produce.PropUID, delay.PropUID)
	require.Equal(t, produce.PropApp, delay.PropApp)
	require.Equal(t, produce.PropTags, delay.PropTags)
	require.Equal(t, produce.AcceptedAtLayout, delay.DueLayout)
	require.Equal(t, string(produce.StatusScheduled), delay.StatusScheduled)
	for _, p := range []string{delay.PropDelayTopic, delay.PropDelayLevel, delay.PropDelayDue, delay.PropRetryPlan, delay.PropRetryStep} {
		require.Truef(t, len(p) > len(produce.ReservedPrefix) && p[:len(produce.ReservedPrefix)] == produce.ReservedPrefix,
			"%s must be reserved, so producers cannot forge it", p)
	}
}

// The sidecar's producer pool is the engine's publisher.
var _ delay.Publisher = (*produce.Pool)(nil)

func TestMessageIDFormatMatchesProxy(t *testing.T) {
	for _, id := range []pulsar.MessageID{
		pulsar.NewMessageID(12, 3, 0, 0),
		pulsar.NewMessageID(1, 0, -1, -1),
		pulsar.EarliestMessageID(),
		nil,
	} {
		require.Equal(t, produce.FormatMessageID(id), delay.FormatMessageID(id))
	}
}
