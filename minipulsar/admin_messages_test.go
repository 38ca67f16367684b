package minipulsar_test

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

func TestAdminMessages(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	c := clientOf(t, s.ServiceURL())
	for _, codec := range []struct {
		name string
		c    pulsar.CompressionType
	}{{"NONE", pulsar.NoCompression}, {"LZ4", pulsar.LZ4}, {"ZLIB", pulsar.ZLib}, {"ZSTD", pulsar.ZSTD}} {
		for _, batched := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/batched=%v", codec.name, batched), func(t *testing.T) {
				topic := fmt.Sprintf("msgs-%s-%v", strings.ToLower(codec.name), batched)
				tn := tname(t, topic)
				require.NoError(t, adm.Subscriptions().Create(tn, "s", utils.Earliest))
				last, err := adm.Topics().GetLastMessageID(tn)
				require.NoError(t, err)
				require.EqualValues(t, -1, last.EntryID, "an empty topic's last entry is -1")

				p := producerOf(t, c, topic, batched, pulsar.ProducerOptions{CompressionType: codec.c, Name: "writer-" + topic})
				msgs := make([]*pulsar.ProducerMessage, 5)
				for i := range msgs {
					msgs[i] = &pulsar.ProducerMessage{
						Payload:    []byte(fmt.Sprintf("payload-%d-%s", i, strings.Repeat("z", 300))),
						Key:        fmt.Sprintf("key-%d", i),
						Properties: map[string]string{"i": strconv.Itoa(i), "codec": codec.name},
						EventTime:  time.UnixMilli(int64(1_700_000_000_000 + i)),
					}
				}
				ids := sendAll(t, p, msgs...)

				last, err = adm.Topics().GetLastMessageID(tn)
				require.NoError(t, err)
				require.Equal(t, ids[4].LedgerID(), last.LedgerID)
				require.Equal(t, ids[4].EntryID(), last.EntryID)

				got, err := adm.Subscriptions().GetMessagesByID(tn, ids[0].LedgerID(), ids[0].EntryID())
				require.NoError(t, err)
				if batched {
					require.Len(t, got, 5, "the whole batch")
					for i, m := range got {
						require.Equal(t, string(msgs[i].Payload), string(m.Payload))
						require.Equal(t, i, m.MessageID.BatchIndex)
					}
					// pulsaradmin merges the batch's properties into one map.
					require.Equal(t, codec.name, got[0].Properties["codec"])
				} else {
					require.Len(t, got, 1)
					require.Equal(t, string(msgs[0].Payload), string(got[0].Payload))
					require.Equal(t, "0", got[0].Properties["i"])
					require.Equal(t, codec.name, got[0].Properties["codec"])
					require.Equal(t, -1, got[0].MessageID.BatchIndex)
				}
				require.Equal(t, ids[0].LedgerID(), got[0].MessageID.LedgerID)
				require.Equal(t, ids[0].EntryID(), got[0].MessageID.EntryID)
				require.NotEmpty(t, got[0].Properties["publish-time"])

				peeked, err := adm.Subscriptions().PeekMessages(tn, "s", 5)
				require.NoError(t, err)
				require.Len(t, peeked, 5)
				for i, m := range peeked {
					require.Equal(t, string(msgs[i].Payload), string(m.Payload))
				}

				// The raw response carries the metadata headers.
				resp, err := http.Get(fmt.Sprintf("%s/admin/v2/persistent/public/default/%s/ledger/%d/entry/%d", s.AdminURL(), topic, ids[4].LedgerID(), ids[4].EntryID()))
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Equal(t, "writer-"+topic, resp.Header.Get("X-Pulsar-Producer-Name"))
				require.Equal(t, fmt.Sprintf("%d:%d", ids[4].LedgerID(), ids[4].EntryID()), resp.Header.Get("X-Pulsar-Message-Id"))
				if codec.c != pulsar.NoCompression {
					require.Equal(t, codec.name, resp.Header.Get("X-Pulsar-Compression"))
				}
				if !batched {
					require.Equal(t, "key-4", resp.Header.Get("X-Pulsar-Partition-Key"))
					require.Equal(t, "2023-11-14T22:13:20.004+0000", resp.Header.Get("X-Pulsar-Event-Time"))
				}

				stored, err := s.Messages(topic)
				require.NoError(t, err)
				require.Len(t, stored, 5)
				for i, m := range stored {
					require.Equal(t, msgs[i].Payload, m.Payload)
					require.Equal(t, msgs[i].Key, m.Key)
					require.Equal(t, msgs[i].Properties, m.Properties)
					require.Equal(t, msgs[i].EventTime.UnixMilli(), m.EventTime.UnixMilli())
					require.Equal(t, "writer-"+topic, m.ProducerName)
					require.EqualValues(t, i, m.SequenceID)
					require.Equal(t, ids[i].LedgerID(), int64(m.ID.Ledger))
					require.Equal(t, ids[i].EntryID(), int64(m.ID.Entry))
					if batched {
						require.Equal(t, ids[i].BatchIdx(), m.ID.BatchIndex)
					} else {
						require.EqualValues(t, -1, m.ID.BatchIndex, "not a batch")
					}
					require.Equal(t, "persistent://public/default/"+topic, m.Topic)
					require.False(t, m.PublishTime.IsZero())
				}
			})
		}
	}
}

func TestAdminMessagesPartitioned(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	tn := tname(t, "pmsgs")
	require.NoError(t, adm.Topics().Create(tn, 2))
	c := clientOf(t, s.ServiceURL())
	p := producerOf(t, c, "pmsgs", false, pulsar.ProducerOptions{})
	msgs := payloads(10, "pm")
	for i, m := range msgs {
		m.Key = strconv.Itoa(i)
	}
	ids := sendAll(t, p, msgs...)

	stored, err := s.Messages("pmsgs")
	require.NoError(t, err)
	require.Len(t, stored, 10)
	require.True(t, sort.SliceIsSorted(stored, func(i, j int) bool { return stored[i].ID.Partition < stored[j].ID.Partition }), "partitions in order")

	// A message is found by id through the partitioned topic's name.
	got, err := adm.Subscriptions().GetMessagesByID(tn, ids[3].LedgerID(), ids[3].EntryID())
	require.NoError(t, err)
	require.Equal(t, "pm-3", string(got[0].Payload))
	_, err = adm.Topics().GetLastMessageID(tn)
	require.Equal(t, http.StatusMethodNotAllowed, adminStatus(err), "last id is per partition")
	part := tname(t, "pmsgs-partition-"+strconv.Itoa(int(ids[9].PartitionIdx())))
	last, err := adm.Topics().GetLastMessageID(part)
	require.NoError(t, err)
	require.Equal(t, ids[9].EntryID(), last.EntryID)
	require.Equal(t, int(ids[9].PartitionIdx()), last.PartitionIndex)
}
