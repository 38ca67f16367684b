package minipulsar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// Wire constants of the Pulsar binary protocol.
const (
	magicCRC32C      = 0x0e01
	magicBrokerEntry = 0x0e02

	// DefaultMaxMessageSize is what CONNECTED advertises unless Options says
	// otherwise (Pulsar's default, 5 MiB).
	DefaultMaxMessageSize = 5 * 1024 * 1024
	// frameOverhead is what a frame may carry beyond max message size
	// (command and metadata), as the client allows.
	frameOverhead = 10 * 1024
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// Frame errors. Each closes only the connection that sent the frame.
var (
	ErrFrameTooLarge   = errors.New("minipulsar: frame larger than the maximum frame size")
	ErrFrameTooSmall   = errors.New("minipulsar: frame shorter than its headers")
	ErrBadCommand      = errors.New("minipulsar: command does not decode")
	ErrBadMagic        = errors.New("minipulsar: payload does not start with the 0x0e01 magic")
	ErrBadChecksum     = errors.New("minipulsar: payload checksum mismatch")
	ErrBadMetadataSize = errors.New("minipulsar: metadata size out of range")
)

// frame is one decoded frame. payload, when present, holds the bytes from the
// 0x0e01 magic to the end of the frame exactly as received, so they can be
// stored and dispatched unchanged (their checksum stays valid).
type frame struct {
	cmd      *pb.BaseCommand
	payload  []byte
	metadata *pb.MessageMetadata // decoded from payload, nil without one
	body     []byte              // the message body after the metadata (aliases payload)
}

// frameReader reads frames from a stream, reusing one buffer for the
// header and allocating a fresh one per payload (payloads outlive the read).
type frameReader struct {
	r       io.Reader
	maxSize int
	hdr     [4]byte
	buf     []byte
}

// readFrame reads and decodes the next frame.
func (fr *frameReader) readFrame() (frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return frame{}, err
	}
	total := int(binary.BigEndian.Uint32(fr.hdr[:]))
	if total > fr.maxSize {
		return frame{}, fmt.Errorf("%w: %d > %d bytes", ErrFrameTooLarge, total, fr.maxSize)
	}
	if total < 4 {
		return frame{}, fmt.Errorf("%w: total size %d", ErrFrameTooSmall, total)
	}
	if cap(fr.buf) < total {
		fr.buf = make([]byte, total)
	}
	buf := fr.buf[:total]
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	return decodeFrame(buf)
}

// decodeFrame decodes a frame without its leading total-size field.
// buf may be reused by the caller afterwards: the payload is copied.
func decodeFrame(buf []byte) (frame, error) {
	if len(buf) < 4 {
		return frame{}, fmt.Errorf("%w: %d bytes", ErrFrameTooSmall, len(buf))
	}
	cmdSize := int(binary.BigEndian.Uint32(buf))
	if cmdSize > len(buf)-4 {
		return frame{}, fmt.Errorf("%w: command size %d exceeds frame of %d bytes", ErrFrameTooSmall, cmdSize, len(buf))
	}
	cmd := &pb.BaseCommand{}
	if err := proto.Unmarshal(buf[4:4+cmdSize], cmd); err != nil {
		return frame{}, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	f := frame{cmd: cmd}
	rest := buf[4+cmdSize:]
	if len(rest) == 0 {
		return f, nil
	}
	payload := make([]byte, len(rest))
	copy(payload, rest)
	md, body, err := parsePayload(payload)
	if err != nil {
		return frame{}, err
	}
	f.payload, f.metadata, f.body = payload, md, body
	return f, nil
}

// parsePayload checks magic and checksum of a stored payload and decodes its
// metadata. body aliases p.
func parsePayload(p []byte) (*pb.MessageMetadata, []byte, error) {
	if len(p) >= 2 && binary.BigEndian.Uint16(p) == magicBrokerEntry {
		if len(p) < 6 {
			return nil, nil, ErrFrameTooSmall
		}
		n := int(binary.BigEndian.Uint32(p[2:]))
		if n > len(p)-6 {
			return nil, nil, ErrBadMetadataSize
		}
		p = p[6+n:]
	}
	if len(p) < 10 {
		return nil, nil, fmt.Errorf("%w: payload section of %d bytes", ErrFrameTooSmall, len(p))
	}
	if binary.BigEndian.Uint16(p) != magicCRC32C {
		return nil, nil, fmt.Errorf("%w: got %#04x", ErrBadMagic, binary.BigEndian.Uint16(p))
	}
	want := binary.BigEndian.Uint32(p[2:])
	if got := crc32c(p[6:]); got != want {
		return nil, nil, fmt.Errorf("%w: computed %#08x, frame says %#08x", ErrBadChecksum, got, want)
	}
	mdSize := int(binary.BigEndian.Uint32(p[6:]))
	if mdSize > len(p)-10 {
		return nil, nil, fmt.Errorf("%w: %d of %d bytes", ErrBadMetadataSize, mdSize, len(p)-10)
	}
	md := &pb.MessageMetadata{}
	if err := proto.Unmarshal(p[10:10+mdSize], md); err != nil {
		return nil, nil, fmt.Errorf("%w: metadata: %w", ErrBadCommand, err)
	}
	return md, p[10+mdSize:], nil
}

// appendFrame appends an encoded frame for cmd (and an optional stored
// payload) to dst.
func appendFrame(dst []byte, cmd *pb.BaseCommand, payload []byte) ([]byte, error) {
	size := proto.Size(cmd)
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+size+len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	var err error
	dst, err = proto.MarshalOptions{}.MarshalAppend(dst, cmd)
	if err != nil {
		return dst[:start], err
	}
	return append(dst, payload...), nil
}

// encodePayload builds a stored payload (magic, checksum, metadata, body);
// used by inspection helpers and tests that fabricate entries.
func encodePayload(md *pb.MessageMetadata, body []byte) ([]byte, error) {
	mdBytes, err := proto.Marshal(md)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 10, 10+len(mdBytes)+len(body))
	binary.BigEndian.PutUint16(out, magicCRC32C)
	binary.BigEndian.PutUint32(out[6:], uint32(len(mdBytes)))
	out = append(out, mdBytes...)
	out = append(out, body...)
	binary.BigEndian.PutUint32(out[2:], crc32c(out[6:]))
	return out, nil
}
