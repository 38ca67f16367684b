package wire

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

// single is one message of a batch built by batchEntry.
type single struct {
	properties map[string]string
	key        string
	hasKey     bool
	eventTime  uint64
	payload    []byte
}

// batchEntry builds a batch payload the way a Pulsar producer does.
func batchEntry(msgs ...single) []byte {
	var out []byte
	for _, m := range msgs {
		var md []byte
		for k, v := range m.properties {
			var kv []byte
			kv = protowire.AppendTag(kv, 1, protowire.BytesType)
			kv = protowire.AppendString(kv, k)
			kv = protowire.AppendTag(kv, 2, protowire.BytesType)
			kv = protowire.AppendString(kv, v)
			md = protowire.AppendTag(md, 1, protowire.BytesType)
			md = protowire.AppendBytes(md, kv)
		}
		if m.hasKey {
			md = protowire.AppendTag(md, 2, protowire.BytesType)
			md = protowire.AppendString(md, m.key)
		}
		md = protowire.AppendTag(md, 3, protowire.VarintType)
		md = protowire.AppendVarint(md, uint64(len(m.payload)))
		md = protowire.AppendTag(md, 8, protowire.VarintType) // sequence_id: skipped
		md = protowire.AppendVarint(md, 77)
		if m.eventTime > 0 {
			md = protowire.AppendTag(md, 5, protowire.VarintType)
			md = protowire.AppendVarint(md, m.eventTime)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(md)))
		out = append(out, md...)
		out = append(out, m.payload...)
	}
	return out
}

func TestDecodeBatchEntry(t *testing.T) {
	body := batchEntry(
		single{properties: map[string]string{"psc-uid": "a"}, key: "k-a", hasKey: true, payload: []byte("first")},
		single{properties: map[string]string{"psc-uid": "b"}, payload: []byte(""), eventTime: 1772366400000},
		single{properties: map[string]string{"psc-uid": "c", "extra": "x"}, key: "k-c", hasKey: true, payload: []byte("third")},
	)
	h := http.Header{}
	h.Set("X-Pulsar-Num-Batch-Message", "3")
	h.Set("X-Pulsar-Publish-Time", "2026-03-01T12:00:00.000+0000")
	h.Set("X-Pulsar-Producer-Name", "p-1")
	// The entry's headers are the first message's metadata, as
	// pulsar-client-go's batch builder sets them; they belong to no other
	// message of the batch.
	h.Set("X-Pulsar-Partition-Key", "k-a")
	h.Set("X-Pulsar-Property", `{"psc-uid":"a","first-only":"1"}`)
	h.Set("X-Pulsar-Event-Time", "2026-02-01T00:00:00.000+0000")
	msgs, err := DecodeEntry(h, body)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	for i, want := range []struct{ uid, key, payload string }{{"a", "k-a", "first"}, {"b", "", ""}, {"c", "k-c", "third"}} {
		m := msgs[i]
		require.EqualValues(t, i, m.BatchIndex)
		require.Equal(t, want.uid, m.Properties["psc-uid"])
		require.Equal(t, want.key, m.Key)
		require.Equal(t, want.payload, string(m.Payload))
		require.Equal(t, 3, m.BatchSize)
		require.Equal(t, "p-1", m.ProducerName)
		require.Equal(t, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), m.PublishTime)
		if i == 1 {
			require.Equal(t, time.UnixMilli(1772366400000).UTC(), m.EventTime)
		} else {
			require.True(t, m.EventTime.IsZero(), "message %d has no event time of its own", i)
		}
		require.NotContains(t, m.Properties, "first-only", "the entry's properties are not merged into message %d", i)
		if i == 2 {
			require.Equal(t, "x", m.Properties["extra"])
		} else {
			require.NotContains(t, m.Properties, "extra", "no property leaks from another message of the batch")
		}
	}
	_, err = DecodeEntry(h, body[:len(body)-1])
	require.ErrorIs(t, err, ErrMalformedEntry)
}

func TestDecodeSingleEntry(t *testing.T) {
	h := http.Header{}
	h.Set("X-Pulsar-Partition-Key", "k")
	h.Set("X-Pulsar-PROPERTY", `{"psc-uid":"u-1","orderId":"7"}`)
	h.Set("X-Pulsar-event-time", "2026-02-01T00:00:00.000+0100")
	msgs, err := DecodeEntry(h, []byte("hello"))
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, "hello", string(m.Payload))
	require.Equal(t, map[string]string{"psc-uid": "u-1", "orderId": "7"}, m.Properties)
	require.Equal(t, "k", m.Key)
	require.Zero(t, m.BatchSize)
	require.Equal(t, time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC), m.EventTime)
	require.True(t, m.PublishTime.IsZero(), "no publish-time header")
}

// The two copies this decoder replaced disagreed; these are the decisions.
func TestDecodeEntryDecisions(t *testing.T) {
	t.Run("old per-property headers are lower-cased", func(t *testing.T) {
		// HTTP loses a header name's case (Go canonicalises psc-uid to
		// Psc-Uid); the sidecar's properties are lower case.
		h := http.Header{}
		h.Set("X-Pulsar-Property-psc-uid", "u-1")
		h.Set("x-pulsar-property-Order-Id", "7")
		msgs, err := DecodeEntry(h, nil)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"psc-uid": "u-1", "order-id": "7"}, msgs[0].Properties)
	})
	t.Run("a properties header that is not JSON fails", func(t *testing.T) {
		// Dropping the properties would show a message without its uid
		// and tags: the console would misname it, a backlog scan would
		// count it as untagged.
		for _, bad := range []string{`{"a":`, `["a"]`, `{"a":1}`} {
			h := http.Header{}
			h.Set("X-Pulsar-PROPERTY", bad)
			_, err := DecodeEntry(h, []byte("x"))
			require.ErrorIs(t, err, ErrMalformedEntry, bad)
		}
		h := http.Header{}
		h.Set("X-Pulsar-PROPERTY", `null`)
		msgs, err := DecodeEntry(h, []byte("x"))
		require.NoError(t, err)
		require.NotNil(t, msgs[0].Properties)
	})
	t.Run("time layouts, all in UTC", func(t *testing.T) {
		want := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		for _, s := range []string{"2026-03-01T12:00:00.000+0000", "2026-03-01T13:00:00.000+0100", "2026-03-01T12:00:00.000Z",
			"2026-03-01T13:00:00.000+01:00", "2026-03-01T12:00:00Z"} {
			got := ParsePulsarTime(s)
			require.Equal(t, want, got, s)
			require.Equal(t, time.UTC, got.Location(), s)
		}
		for _, s := range []string{"", "yesterday", "1772366400000"} {
			require.True(t, ParsePulsarTime(s).IsZero(), s)
		}
	})
	t.Run("one size cap, refused rather than cut short", func(t *testing.T) {
		b, err := ReadEntry(bytes.NewReader(make([]byte, MaxEntryBytes)))
		require.NoError(t, err)
		require.Len(t, b, MaxEntryBytes)
		_, err = ReadEntry(bytes.NewReader(make([]byte, MaxEntryBytes+1)))
		require.ErrorIs(t, err, ErrEntryTooLarge)
	})
	t.Run("payload_size is required", func(t *testing.T) {
		h := http.Header{}
		h.Set("X-Pulsar-Num-Batch-Message", "1")
		md := protowire.AppendTag(nil, 8, protowire.VarintType)
		md = protowire.AppendVarint(md, 1)
		body := binary.BigEndian.AppendUint32(nil, uint32(len(md)))
		_, err := DecodeEntry(h, append(append(body, md...), 'x'))
		require.ErrorIs(t, err, ErrMalformedEntry)
	})
	t.Run("batch sizes the body cannot hold", func(t *testing.T) {
		one := batchEntry(single{payload: []byte("x")})
		for _, n := range []string{"0", "-1", "x", "2", "99999999999"} {
			h := http.Header{}
			h.Set("X-Pulsar-Num-Batch-Message", n)
			_, err := DecodeEntry(h, one)
			require.ErrorIs(t, err, ErrMalformedEntry, n)
		}
	})
	t.Run("base64 partition key", func(t *testing.T) {
		md := protowire.AppendTag(nil, 2, protowire.BytesType)
		md = protowire.AppendString(md, "a2V5")
		md = protowire.AppendTag(md, 6, protowire.VarintType)
		md = protowire.AppendVarint(md, 1)
		md = protowire.AppendTag(md, 3, protowire.VarintType)
		md = protowire.AppendVarint(md, 0)
		h := http.Header{}
		h.Set("X-Pulsar-Num-Batch-Message", "1")
		msgs, err := DecodeEntry(h, append(binary.BigEndian.AppendUint32(nil, uint32(len(md))), md...))
		require.NoError(t, err)
		require.Equal(t, "key", msgs[0].Key)
	})
}

// FuzzDecodeEntry: an entry is outside input. Any body and headers either
// decode into as many messages as the batch header says, each payload
// inside the body, or fail with ErrMalformedEntry; never a panic.
func FuzzDecodeEntry(f *testing.F) {
	one := []byte{0, 0, 0, 4, 0x18, 0x02, 0x0a, 0x00, 'h', 'i'}
	f.Add("1", "", one)
	f.Add("2", `{"a":"b"}`, append(append([]byte{}, one...), one...))
	f.Add("", `{"psc-uid":"x"}`, []byte("plain payload"))
	f.Add("3", "", []byte{0, 0, 0, 200})
	f.Add("-1", "", []byte{})
	f.Add("1", "", []byte{0, 0, 0, 2, 0x18, 0x7f})
	f.Add("1", "", []byte{0xff, 0xff, 0xff, 0xff})
	f.Add("2", "", batchEntry(single{payload: []byte("x")}, single{properties: map[string]string{"k": "v"}, key: "k", hasKey: true, payload: []byte("yy")}))
	f.Fuzz(func(t *testing.T, batch, props string, body []byte) {
		h := http.Header{}
		if batch != "" {
			h.Set("X-Pulsar-Num-Batch-Message", batch)
		}
		if props != "" {
			h.Set("X-Pulsar-Property", props)
		}
		msgs, err := DecodeEntry(h, body)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformedEntry)
			return
		}
		if batch == "" {
			require.Len(t, msgs, 1)
			require.Equal(t, body, msgs[0].Payload)
			require.NotNil(t, msgs[0].Properties)
			return
		}
		n, err := strconv.Atoi(batch)
		require.NoError(t, err, "a batch header that does not parse must fail")
		require.Len(t, msgs, n)
		total := 0
		for i, m := range msgs {
			require.EqualValues(t, i, m.BatchIndex)
			require.Equal(t, n, m.BatchSize)
			require.NotNil(t, m.Properties)
			total += len(m.Payload)
		}
		require.LessOrEqual(t, total, len(body), "payloads past the body")
	})
}

// FuzzParseSingleMetadata: any metadata record either fails or gives a
// properties map, never a panic.
func FuzzParseSingleMetadata(f *testing.F) {
	f.Add([]byte{0x0a, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v', 0x18, 0x05})
	f.Add([]byte{0x18, 0x00})
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := parseSingleMetadata(b)
		if err != nil {
			return
		}
		require.NotNil(t, md.properties)
	})
}
