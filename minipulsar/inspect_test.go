package minipulsar_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

func TestInspect(t *testing.T) {
	s := minipulsar.RunT(t)
	c := clientOf(t, s.ServiceURL())
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "inspect", SubscriptionName: "s", Type: pulsar.Shared, EnableBatchIndexAcknowledgment: true})
	require.NoError(t, err)
	defer cons.Close()
	batch := producerOf(t, c, "inspect", true, pulsar.ProducerOptions{})
	single := producerOf(t, c, "inspect", false, pulsar.ProducerOptions{})
	bids := sendAll(t, batch, payloads(5, "b")...)
	sids := sendAll(t, single, payloads(2, "s")...)

	got := receiveN(t, cons, 7)
	acked := map[string]bool{"b-1": true, "b-3": true, "s-0": true}
	for _, m := range got {
		if acked[string(m.Payload())] {
			require.NoError(t, cons.Ack(m))
		}
	}
	ledger := uint64(bids[0].LedgerID())
	want := []minipulsar.MessageID{
		{Ledger: ledger, Entry: uint64(bids[0].EntryID()), BatchIndex: 0, Partition: -1},
		{Ledger: ledger, Entry: uint64(bids[0].EntryID()), BatchIndex: 2, Partition: -1},
		{Ledger: ledger, Entry: uint64(bids[0].EntryID()), BatchIndex: 4, Partition: -1},
		{Ledger: ledger, Entry: uint64(sids[1].EntryID()), BatchIndex: -1, Partition: -1},
	}
	eventually(t, func(a *assertT) {
		un, err := s.Unacked("inspect", "s")
		require.NoError(a, err)
		require.Equal(a, want, un)
		n, err := s.Backlog("inspect", "s")
		require.NoError(a, err)
		require.EqualValues(a, 4, n)
	})
	require.Equal(t, fmt.Sprintf("%d:%d:-1:2", ledger, bids[0].EntryID()), want[1].String())

	names, err := s.Subscriptions("inspect")
	require.NoError(t, err)
	require.Equal(t, []string{"s"}, names)
	require.Contains(t, s.Topics(), "persistent://public/default/inspect")
	stored, err := s.Messages("inspect")
	require.NoError(t, err)
	require.Len(t, stored, 7, "acknowledged messages stay stored")

	_, err = s.Backlog("nope", "s")
	require.ErrorIs(t, err, minipulsar.ErrTopicNotFound)
	_, err = s.Backlog("inspect", "nope")
	require.ErrorIs(t, err, minipulsar.ErrSubNotFound)
	_, err = s.Unacked("inspect", "nope")
	require.ErrorIs(t, err, minipulsar.ErrSubNotFound)
	_, err = s.Messages("nope")
	require.ErrorIs(t, err, minipulsar.ErrTopicNotFound)
	_, err = s.Subscriptions("nope")
	require.ErrorIs(t, err, minipulsar.ErrTopicNotFound)
}

func TestInspectChunked(t *testing.T) {
	s := minipulsar.RunT(t)
	c := clientOf(t, s.ServiceURL())
	p := producerOf(t, c, "chunked", false, pulsar.ProducerOptions{EnableChunking: true, ChunkMaxMessageSize: 100, CompressionType: pulsar.LZ4})
	big := make([]byte, 1000) // incompressible, so it takes 10 chunks
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	small := []byte("small")
	ids := sendAll(t, p, &pulsar.ProducerMessage{Payload: big, Key: "k"}, &pulsar.ProducerMessage{Payload: small})

	stored, err := s.Messages("chunked")
	require.NoError(t, err)
	require.Len(t, stored, 2, "the chunks are joined")
	require.Equal(t, big, stored[0].Payload)
	require.Equal(t, "k", stored[0].Key)
	require.Equal(t, ids[0].EntryID(), int64(stored[0].ID.Entry), "a chunked message has its last chunk's id")
	require.Equal(t, small, stored[1].Payload)
	require.Equal(t, ids[1].EntryID(), int64(stored[1].ID.Entry))
	require.GreaterOrEqual(t, stored[0].ID.Entry, uint64(9), "stored as ten chunks or more")
}
