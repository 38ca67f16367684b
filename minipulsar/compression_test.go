package minipulsar

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// compress is the producer side of each codec, in the block formats the
// Pulsar clients use.
func compress(t testing.TB, codec pb.CompressionType, src []byte) []byte {
	t.Helper()
	switch codec {
	case pb.CompressionType_NONE:
		return src
	case pb.CompressionType_LZ4:
		// As pulsar-client-go does: an incompressible block is written as
		// one literal run.
		dst := make([]byte, max(lz4.CompressBlockBound(len(src)), 16))
		n, err := lz4.CompressBlock(src, dst, nil)
		require.NoError(t, err)
		if n == 0 {
			h := 1
			if len(src) < 0xF {
				dst[0] = byte(len(src) << 4)
			} else {
				dst[0] = 0xF0
				l := len(src) - 0xF
				for ; l >= 0xFF; l -= 0xFF {
					dst[h] = 0xFF
					h++
				}
				dst[h] = byte(l)
				h++
			}
			n = h + copy(dst[h:], src)
		}
		return dst[:n]
	case pb.CompressionType_ZLIB:
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		_, err := w.Write(src)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return b.Bytes()
	case pb.CompressionType_ZSTD:
		enc, err := zstd.NewWriter(nil)
		require.NoError(t, err)
		defer enc.Close()
		return enc.EncodeAll(src, nil)
	case pb.CompressionType_SNAPPY:
		return snappy.Encode(nil, src)
	}
	t.Fatalf("unknown codec %v", codec)
	return nil
}

var codecs = []pb.CompressionType{pb.CompressionType_NONE, pb.CompressionType_LZ4, pb.CompressionType_ZLIB, pb.CompressionType_ZSTD, pb.CompressionType_SNAPPY}

func TestDecompressRoundTrip(t *testing.T) {
	inputs := map[string][]byte{
		"empty":      {},
		"short":      []byte("hello"),
		"random":     []byte("\x8f\x12\xa0\x33\x00\xfe\x91\x7c\x05\xd2\x44\x18\x6b\xc9\x02\xee\x57"),
		"repetitive": bytes.Repeat([]byte("pulsar sidecar "), 1000),
	}
	for _, codec := range codecs {
		for name, in := range inputs {
			t.Run(codec.String()+"/"+name, func(t *testing.T) {
				out, err := decompress(codec, compress(t, codec, in), uint32(len(in)))
				require.NoError(t, err)
				require.Equal(t, in, out)
			})
		}
	}
}

func TestDecompressRejectsLies(t *testing.T) {
	in := bytes.Repeat([]byte("abc"), 100)
	for _, codec := range codecs[1:] {
		t.Run(codec.String(), func(t *testing.T) {
			c := compress(t, codec, in)
			_, err := decompress(codec, c, uint32(len(in)+1))
			require.ErrorIs(t, err, ErrDecompress, "a wrong uncompressed size is an error")
			_, err = decompress(codec, c, maxUncompressedSize+1)
			require.ErrorIs(t, err, ErrDecompress, "an oversize claim is refused before allocating")
			_, err = decompress(codec, []byte{0xff, 0x00, 0x13, 0x37}, uint32(len(in)))
			require.ErrorIs(t, err, ErrDecompress, "garbage does not decompress")
		})
	}
	_, err := decompress(pb.CompressionType(42), in, 3)
	require.ErrorIs(t, err, ErrDecompress)
}

func smm(payload string, props ...string) *pb.SingleMessageMetadata {
	m := &pb.SingleMessageMetadata{PayloadSize: proto.Int32(int32(len(payload)))}
	for i := 0; i+1 < len(props); i += 2 {
		m.Properties = append(m.Properties, &pb.KeyValue{Key: proto.String(props[i]), Value: proto.String(props[i+1])})
	}
	return m
}

func TestDecodeBatch(t *testing.T) {
	good, err := encodeBatch(
		[]*pb.SingleMessageMetadata{smm("one", "k", "v"), smm(""), smm("three")},
		[][]byte{[]byte("one"), {}, []byte("three")})
	require.NoError(t, err)

	msgs, err := decodeBatch(good, 3)
	require.NoError(t, err)
	require.Len(t, msgs, 3)
	require.Equal(t, "one", string(msgs[0].payload))
	require.Equal(t, "v", msgs[0].meta.GetProperties()[0].GetValue())
	require.Empty(t, msgs[1].payload)
	require.Equal(t, "three", string(msgs[2].payload))

	// Fewer messages than the body holds: the rest is ignored, as the client does.
	msgs, err = decodeBatch(good, 2)
	require.NoError(t, err)
	require.Len(t, msgs, 2)

	badMeta := binary.BigEndian.AppendUint32(nil, 3)
	badMeta = append(badMeta, 0xff, 0xff, 0xff, 0, 0, 0, 0)
	lyingPayload, err := encodeBatch([]*pb.SingleMessageMetadata{{PayloadSize: proto.Int32(1000)}}, [][]byte{[]byte("x")})
	require.NoError(t, err)
	negative, err := encodeBatch([]*pb.SingleMessageMetadata{{PayloadSize: proto.Int32(-1)}}, [][]byte{[]byte("xxxxx")})
	require.NoError(t, err)
	noSize := binary.BigEndian.AppendUint32(nil, 0)
	noSize = append(noSize, 1, 2, 3, 4)

	for _, tc := range []struct {
		name string
		body []byte
		n    int32
	}{
		{"zero messages", good, 0},
		{"negative count", good, -1},
		{"more messages than bytes", good, 1 << 30},
		{"one message too many", good, 4},
		{"truncated size prefix", good[:2], 1},
		{"metadata size past the end", []byte{0, 0, 0, 200, 1, 2, 3, 4}, 1},
		{"metadata does not decode", badMeta, 1},
		{"payload size past the end", lyingPayload, 1},
		{"negative payload size", negative, 1},
		{"missing required payload size", noSize, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeBatch(tc.body, tc.n)
			require.ErrorIs(t, err, ErrCorruptBatch)
		})
	}
}

func TestDecodeStoredEntry(t *testing.T) {
	body, err := encodeBatch([]*pb.SingleMessageMetadata{smm("a"), smm("bb")}, [][]byte{[]byte("a"), []byte("bb")})
	require.NoError(t, err)
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			md := &pb.MessageMetadata{
				ProducerName: proto.String("p"), SequenceId: proto.Uint64(7), PublishTime: proto.Uint64(1000),
				NumMessagesInBatch: proto.Int32(2), UncompressedSize: proto.Uint32(uint32(len(body))),
			}
			if codec != pb.CompressionType_NONE {
				md.Compression = codec.Enum()
			}
			stored, err := encodePayload(md, compress(t, codec, body))
			require.NoError(t, err)
			d, err := decodeStoredEntry(stored)
			require.NoError(t, err)
			require.True(t, d.batch)
			require.Equal(t, body, d.body)
			require.Len(t, d.msgs, 2)
			require.Equal(t, "bb", string(d.msgs[1].payload))
		})
	}
}

// FuzzDecodeBatch checks that no input makes the batch decoder panic or
// over-allocate, and that what it accepts is consistent: exactly n messages
// whose sizes fit in the body and whose payloads have their declared size.
// Well-formed batches round-trip through encodeBatch.
func FuzzDecodeBatch(f *testing.F) {
	good, err := encodeBatch(
		[]*pb.SingleMessageMetadata{smm("one", "k", "v"), smm(""), smm("three")},
		[][]byte{[]byte("one"), {}, []byte("three")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, int32(3))
	f.Add(good, int32(1))
	f.Add(good[:10], int32(2))
	f.Add([]byte{}, int32(1))
	f.Add([]byte{0, 0, 0, 2, 0x18, 0x01, 'x'}, int32(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, int32(1<<30))
	f.Fuzz(func(t *testing.T, body []byte, n int32) {
		msgs, err := decodeBatch(body, n)
		if err != nil {
			if !errors.Is(err, ErrCorruptBatch) {
				t.Fatalf("error not wrapping ErrCorruptBatch: %v", err)
			}
			return
		}
		if int32(len(msgs)) != n {
			t.Fatalf("got %d messages, want %d", len(msgs), n)
		}
		used := 0
		metas := make([]*pb.SingleMessageMetadata, len(msgs))
		payloads := make([][]byte, len(msgs))
		for i, m := range msgs {
			if int32(len(m.payload)) != m.meta.GetPayloadSize() {
				t.Fatalf("message %d: payload %d bytes, declared %d", i, len(m.payload), m.meta.GetPayloadSize())
			}
			if !bytes.Equal(m.payload, body[used+m.size-len(m.payload):used+m.size]) {
				t.Fatalf("message %d: payload is not the bytes at its place in the body", i)
			}
			used += m.size
			metas[i], payloads[i] = m.meta, m.payload
		}
		if used > len(body) {
			t.Fatalf("messages take %d bytes of a %d-byte body", used, len(body))
		}
		again, err := encodeBatch(metas, payloads)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := decodeBatch(again, n)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		for i := range back {
			if !bytes.Equal(back[i].payload, msgs[i].payload) || !proto.Equal(back[i].meta, msgs[i].meta) {
				t.Fatalf("message %d differs after a round trip", i)
			}
		}
	})
}

// FuzzDecompress checks that no codec panics or allocates past the limit on
// any input, and that a success has exactly the declared size.
func FuzzDecompress(f *testing.F) {
	in := []byte("hello hello hello hello")
	for _, codec := range codecs {
		f.Add(int32(codec), compress(f, codec, in), uint32(len(in)))
	}
	f.Add(int32(pb.CompressionType_LZ4), []byte{0xf0}, uint32(1<<20))
	f.Fuzz(func(t *testing.T, codec int32, src []byte, size uint32) {
		out, err := decompress(pb.CompressionType(codec), src, size)
		if err != nil {
			if !errors.Is(err, ErrDecompress) {
				t.Fatalf("error not wrapping ErrDecompress: %v", err)
			}
			return
		}
		if pb.CompressionType(codec) != pb.CompressionType_NONE && len(out) != int(size) {
			t.Fatalf("got %d bytes, declared %d", len(out), size)
		}
	})
}
