package minipulsar

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// Payload decoding errors. Stored entries come from clients, so every
// length and size in them is checked before it is trusted.
var (
	ErrDecompress   = errors.New("minipulsar: cannot decompress payload")
	ErrCorruptBatch = errors.New("minipulsar: corrupt batch")
)

// maxUncompressedSize bounds what one entry may claim to decompress to, so a
// lying uncompressed_size cannot make the broker allocate without limit.
const maxUncompressedSize = 64 << 20

var (
	zstdOnce sync.Once
	zstdDec  *zstd.Decoder
	zstdErr  error
)

// zstdDecoder is shared: DecodeAll is safe for concurrent use and starts no
// goroutines.
func zstdDecoder() (*zstd.Decoder, error) {
	zstdOnce.Do(func() {
		zstdDec, zstdErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(4),
			zstd.WithDecoderMaxMemory(maxUncompressedSize))
	})
	return zstdDec, zstdErr
}

// decompress undoes the producer's compression of an entry body. The result
// must be exactly size bytes, as Pulsar's codecs require. With NONE, src is
// returned as is.
func decompress(codec pb.CompressionType, src []byte, size uint32) ([]byte, error) {
	if codec == pb.CompressionType_NONE {
		return src, nil
	}
	if size > maxUncompressedSize {
		return nil, fmt.Errorf("%w: %s: uncompressed size %d exceeds %d", ErrDecompress, codec, size, maxUncompressedSize)
	}
	var out []byte
	switch codec {
	case pb.CompressionType_LZ4:
		out = make([]byte, size)
		n, err := lz4.UncompressBlock(src, out)
		if err != nil {
			return nil, fmt.Errorf("%w: LZ4: %w", ErrDecompress, err)
		}
		out = out[:n]
	case pb.CompressionType_ZLIB:
		r, err := zlib.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("%w: ZLIB: %w", ErrDecompress, err)
		}
		out, err = io.ReadAll(io.LimitReader(r, int64(size)+1))
		if err != nil {
			return nil, fmt.Errorf("%w: ZLIB: %w", ErrDecompress, err)
		}
	case pb.CompressionType_ZSTD:
		dec, err := zstdDecoder()
		if err != nil {
			return nil, fmt.Errorf("%w: ZSTD: %w", ErrDecompress, err)
		}
		out, err = dec.DecodeAll(src, make([]byte, 0, size))
		if err != nil {
			return nil, fmt.Errorf("%w: ZSTD: %w", ErrDecompress, err)
		}
	case pb.CompressionType_SNAPPY:
		n, err := snappy.DecodedLen(src)
		if err != nil {
			return nil, fmt.Errorf("%w: SNAPPY: %w", ErrDecompress, err)
		}
		if n != int(size) {
			return nil, fmt.Errorf("%w: SNAPPY: block holds %d bytes, metadata says %d", ErrDecompress, n, size)
		}
		out, err = snappy.Decode(make([]byte, n), src)
		if err != nil {
			return nil, fmt.Errorf("%w: SNAPPY: %w", ErrDecompress, err)
		}
	default:
		return nil, fmt.Errorf("%w: unknown codec %d", ErrDecompress, int32(codec))
	}
	if len(out) != int(size) {
		return nil, fmt.Errorf("%w: %s: got %d bytes, metadata says %d", ErrDecompress, codec, len(out), size)
	}
	return out, nil
}

// batchMsg is one message of a batch entry. payload aliases the batch body.
type batchMsg struct {
	meta    *pb.SingleMessageMetadata
	payload []byte
	size    int // bytes of the body this message takes, size prefix included
}

// decodeBatch splits an uncompressed batch body into its n messages, each
// `[u32 metadata size][SingleMessageMetadata][payload]`. Bytes after the n-th
// message are ignored, as the client does.
func decodeBatch(body []byte, n int32) ([]batchMsg, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: %d messages", ErrCorruptBatch, n)
	}
	// Each message takes at least 4 bytes of size prefix plus 2 bytes of
	// metadata (the required payload_size), so n cannot exceed len/6.
	if int64(n) > int64(len(body)/6) {
		return nil, fmt.Errorf("%w: %d messages cannot fit in %d bytes", ErrCorruptBatch, n, len(body))
	}
	msgs := make([]batchMsg, 0, n)
	rest := body
	for i := int32(0); i < n; i++ {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: message %d: truncated size prefix", ErrCorruptBatch, i)
		}
		mdSize := binary.BigEndian.Uint32(rest)
		if uint64(mdSize) > uint64(len(rest)-4) {
			return nil, fmt.Errorf("%w: message %d: metadata size %d exceeds the %d bytes left", ErrCorruptBatch, i, mdSize, len(rest)-4)
		}
		md := &pb.SingleMessageMetadata{}
		if err := proto.Unmarshal(rest[4:4+mdSize], md); err != nil {
			return nil, fmt.Errorf("%w: message %d: metadata: %w", ErrCorruptBatch, i, err)
		}
		rest = rest[4+mdSize:]
		ps := md.GetPayloadSize()
		if ps < 0 || int64(ps) > int64(len(rest)) {
			return nil, fmt.Errorf("%w: message %d: payload size %d, %d bytes left", ErrCorruptBatch, i, ps, len(rest))
		}
		msgs = append(msgs, batchMsg{meta: md, payload: rest[:ps:ps], size: 4 + int(mdSize) + int(ps)})
		rest = rest[ps:]
	}
	return msgs, nil
}

// encodeBatch is decodeBatch's inverse, for tests and fabricated entries.
func encodeBatch(msgs []*pb.SingleMessageMetadata, payloads [][]byte) ([]byte, error) {
	var out []byte
	for i, md := range msgs {
		b, err := proto.Marshal(md)
		if err != nil {
			return nil, err
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
		out = append(out, payloads[i]...)
	}
	return out, nil
}

// decodedEntry is a stored entry with its body decompressed.
type decodedEntry struct {
	md    *pb.MessageMetadata
	body  []byte     // uncompressed body: one payload, or a whole batch
	batch bool       // the body is in batch format (num_messages_in_batch is set)
	msgs  []batchMsg // the batch's messages when batch is true
	// storedBody is the size of the body as stored (compressed), which
	// Pulsar reports as X-Pulsar-batch-size.
	storedBody int
}

// decodeStoredEntry parses a stored entry (from the 0x0e01 magic on),
// decompresses its body and splits a batch.
func decodeStoredEntry(data []byte) (*decodedEntry, error) {
	md, body, err := parsePayload(data)
	if err != nil {
		return nil, err
	}
	d := &decodedEntry{md: md, storedBody: len(body)}
	// A chunk is a slice of a compressed payload: it only decompresses once
	// every chunk is joined, so it is reported as stored.
	if md.GetNumChunksFromMsg() > 1 {
		d.body = body
		return d, nil
	}
	d.body, err = decompress(md.GetCompression(), body, md.GetUncompressedSize())
	if err != nil {
		return nil, err
	}
	if md.NumMessagesInBatch != nil {
		d.batch = true
		d.msgs, err = decodeBatch(d.body, md.GetNumMessagesInBatch())
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}
