package wire

import (
	"strings"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMessageIDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		id   pulsar.MessageID
		want string
	}{
		{pulsar.NewMessageID(12, 3, 0, 0), "12:3:0:0"},
		{pulsar.NewMessageID(1, 0, -1, -1), "1:0:-1:-1"},
		{pulsar.NewMessageID(1<<40, 1<<33, 7, 999), "1099511627776:8589934592:999:7"},
	} {
		s := FormatMessageID(tc.id)
		require.Equal(t, tc.want, s)
		p, err := ParseMessageID(s)
		require.NoError(t, err)
		assert.Equal(t, MessageIDParts{LedgerID: tc.id.LedgerID(), EntryID: tc.id.EntryID(),
			Partition: tc.id.PartitionIdx(), BatchIdx: tc.id.BatchIdx()}, p)
	}
	assert.Empty(t, FormatMessageID(nil))
	for _, bad := range []string{"", "1:2:3", "1:2:3:4:5", "a:2:3:4", "1:b:3:4", "1:2:99999999999:4", "1:2:3:x"} {
		_, err := ParseMessageID(bad)
		assert.Error(t, err, bad)
	}
}

func TestParseTags(t *testing.T) {
	assert.Nil(t, ParseTags(""))
	assert.Equal(t, []string{"PAY_1001", "REFUND"}, ParseTags("PAY_1001,REFUND"))
}

func TestPropertiesAreReserved(t *testing.T) {
	for _, p := range []string{PropUID, PropApp, PropTags, PropAcceptedAt, PropIdempotencyKey, PropDuplicateRisk,
		PropRetryPlan, PropDelayTopic, PropDelayLevel, PropDelayDue, PropRetryStep} {
		assert.True(t, strings.HasPrefix(p, ReservedPrefix) && len(p) > len(ReservedPrefix), p)
	}
}

// FuzzParseMessageID: whatever it accepts formats back to an id that
// parses to the same parts (message ids come from clients' requests).
func FuzzParseMessageID(f *testing.F) {
	for _, s := range []string{"12:3:0:0", "1:0:-1:-1", "", ":::", "1:2:3:4:5", "-0:+1:0:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseMessageID(s)
		if err != nil {
			return
		}
		again, err := ParseMessageID(FormatIDParts(p.LedgerID, p.EntryID, p.Partition, p.BatchIdx))
		require.NoError(t, err)
		require.Equal(t, p, again)
	})
}
