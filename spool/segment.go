package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
)

// Segment file layout (see doc.go):
//
//	header  magic "PSSG" | version byte | 3 reserved zero bytes | segment id uint64 LE   (16 bytes)
//	frame*  payload length uint32 LE | CRC-32C uint32 LE | payload
//
// The CRC covers the four length bytes followed by the payload, so a damaged
// length is caught as well as a damaged payload.
const (
	segmentMagic    = "PSSG"
	segmentVersion  = 1
	headerSize      = 16
	frameHeaderSize = 8

	segmentPrefix = "spool-"
	segmentSuffix = ".log"
	corruptSuffix = ".corrupt"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func segmentName(id uint64) string {
	return fmt.Sprintf("%s%012d%s", segmentPrefix, id, segmentSuffix)
}

// parseSegmentName returns the id of a segment file name; ok is false for
// anything else, including set-aside ".corrupt" files.
func parseSegmentName(name string) (id uint64, ok bool) {
	digits, found := strings.CutPrefix(name, segmentPrefix)
	if !found {
		return 0, false
	}
	digits, found = strings.CutSuffix(digits, segmentSuffix)
	if !found {
		return 0, false
	}
	return parseID(digits)
}

// parseAnyID returns the segment id named by any file that starts with
// "spool-<digits>", segments and set-aside files alike. Open uses it so that a
// new segment never takes the name of an older file.
func parseAnyID(name string) (uint64, bool) {
	rest, found := strings.CutPrefix(name, segmentPrefix)
	if !found {
		return 0, false
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	return parseID(rest[:end])
}

func parseID(digits string) (uint64, bool) {
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || id == 0 {
		return 0, false
	}
	return id, true
}

func appendHeader(b []byte, id uint64) []byte {
	b = append(b, segmentMagic...)
	b = append(b, segmentVersion, 0, 0, 0)
	return binary.LittleEndian.AppendUint64(b, id)
}

// appendFrame appends one framed payload to b.
func appendFrame(b, payload []byte) []byte {
	var lb [4]byte
	binary.LittleEndian.PutUint32(lb[:], uint32(len(payload)))
	crc := crc32.Update(crc32.Checksum(lb[:], castagnoli), castagnoli, payload)
	b = append(b, lb[:]...)
	b = binary.LittleEndian.AppendUint32(b, crc)
	return append(b, payload...)
}

// checkFrame verifies a frame header and its payload.
func checkFrame(hdr, payload []byte) bool {
	want := binary.LittleEndian.Uint32(hdr[4:8])
	return crc32.Update(crc32.Checksum(hdr[:4], castagnoli), castagnoli, payload) == want
}

// Reasons a segment's tail is set aside.
const (
	reasonHeader    = "bad segment header"
	reasonTruncated = "truncated frame" // a torn write: the frame runs past the end of the file
	reasonLength    = "invalid frame length"
	reasonChecksum  = "checksum mismatch"
	reasonDecode    = "undecodable record"
)

// entry is what the spool keeps in memory per record.
type entry struct {
	off   int64  // frame offset in the segment
	at    int64  // SpooledAt in unix nanoseconds, 0 if unset
	n     uint32 // payload length
	acked bool
}

// scanResult is the outcome of reading one segment file from the start.
type scanResult struct {
	entries []entry
	end     int64  // end of the valid prefix; equals the file size when clean
	reason  string // why the bytes after end are bad; empty when clean
}

// scanSegment reads the segment with the given id and size from r, verifying
// the header, each frame's checksum and each record's encoding. It stops at
// the first bad frame: everything before end is valid. A record whose
// encoding is from a newer version aborts the scan with ErrUnsupported so that
// an older binary never sets aside what a newer one wrote. Other errors are
// I/O errors from r.
func scanSegment(r io.ReaderAt, size int64, id uint64) (scanResult, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10)
	var hdr [headerSize]byte
	if size < headerSize {
		return scanResult{reason: reasonHeader}, nil
	}
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return scanResult{}, err
	}
	switch {
	case string(hdr[:4]) != segmentMagic:
		return scanResult{reason: reasonHeader}, nil
	case hdr[4] > segmentVersion:
		return scanResult{}, fmt.Errorf("%w: segment %d has format version %d", ErrUnsupported, id, hdr[4])
	case hdr[4] != segmentVersion || hdr[5] != 0 || hdr[6] != 0 || hdr[7] != 0 ||
		binary.LittleEndian.Uint64(hdr[8:]) != id:
		return scanResult{reason: reasonHeader}, nil
	}
	res := scanResult{end: headerSize}
	var payload []byte
	var rec Record
	for res.end < size {
		var fh [frameHeaderSize]byte
		if size-res.end < frameHeaderSize {
			res.reason = reasonTruncated
			return res, nil
		}
		if _, err := io.ReadFull(br, fh[:]); err != nil {
			return res, err
		}
		n := binary.LittleEndian.Uint32(fh[:4])
		if n == 0 {
			res.reason = reasonLength
			return res, nil
		}
		if int64(n) > size-res.end-frameHeaderSize {
			res.reason = reasonTruncated
			return res, nil
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return res, err
		}
		if !checkFrame(fh[:], payload) {
			res.reason = reasonChecksum
			return res, nil
		}
		if err := rec.UnmarshalBinary(payload); err != nil {
			if errors.Is(err, ErrUnsupported) {
				return res, fmt.Errorf("segment %d offset %d: %w", id, res.end, err)
			}
			res.reason = reasonDecode
			return res, nil
		}
		res.entries = append(res.entries, entry{off: res.end, at: unixNano(rec.SpooledAt), n: n})
		res.end += frameHeaderSize + int64(n)
	}
	return res, nil
}
