package minipulsar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Segment file layout (docs/adr/001-minipulsar-storage.md):
//
//	header   magic "MPSG" | version byte 1 | 3 zero bytes | ledger uint64 LE | first entry id uint64 LE   (24 bytes)
//	record*  payload length uint32 LE | CRC-32C uint32 LE | payload
//	payload  entry id uint64 LE | producer's last sequence id int64 LE | producer name (uvarint length, bytes) | entry bytes
//
// The CRC covers the four length bytes followed by the payload, so a damaged
// length is caught as well as a damaged payload. Every header field is
// checked against what the file's place says it must be (the topic's ledger,
// the first id in the file name), so the header needs no checksum of its own.
const (
	segmentMagic      = "MPSG"
	segmentVersion    = 1
	segmentHeaderSize = 24
	recordHeaderSize  = 8
	minPayloadSize    = 8 + 8 + 1
	maxPayloadSize    = 256 << 20

	segmentSuffix = ".seg"
	corruptSuffix = ".corrupt"
	// maxIDGap bounds how far past the expected id a record found while
	// scanning beyond damage may be and still count as ours.
	maxIDGap = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Decoding errors. errTruncated means the data ends inside a record (a torn
// write looks like this); errCorrupt means the bytes there are not a record.
var (
	errTruncated = errors.New("record runs past the end of the segment")
	errCorrupt   = errors.New("corrupt record")
)

// logRecord is one decoded record. producer and data alias the segment
// buffer.
type logRecord struct {
	id       uint64
	lastSeq  int64
	producer []byte
	data     []byte
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, segmentSuffix) }

// parseSegmentName returns the first entry id a segment file name carries;
// ok is false for anything else, set-aside ".corrupt" files included.
func parseSegmentName(name string) (first uint64, ok bool) {
	digits, found := strings.CutSuffix(name, segmentSuffix)
	if !found || len(digits) != 20 {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil
}

func appendSegmentHeader(b []byte, ledger, first uint64) []byte {
	b = append(b, segmentMagic...)
	b = append(b, segmentVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, ledger)
	return binary.LittleEndian.AppendUint64(b, first)
}

// checkSegmentHeader verifies the header at the start of b.
func checkSegmentHeader(b []byte, ledger, first uint64) error {
	if len(b) < segmentHeaderSize {
		return fmt.Errorf("%w: segment header has %d of %d bytes", errTruncated, len(b), segmentHeaderSize)
	}
	switch {
	case string(b[:4]) != segmentMagic:
		return fmt.Errorf("%w: bad segment magic %q", errCorrupt, b[:4])
	case b[4] != segmentVersion:
		return fmt.Errorf("%w: unsupported segment version %d", errCorrupt, b[4])
	case b[5] != 0 || b[6] != 0 || b[7] != 0:
		return fmt.Errorf("%w: reserved header bytes set", errCorrupt)
	}
	if l := binary.LittleEndian.Uint64(b[8:]); l != ledger {
		return fmt.Errorf("%w: segment of ledger %d in the directory of ledger %d", errCorrupt, l, ledger)
	}
	if f := binary.LittleEndian.Uint64(b[16:]); f != first {
		return fmt.Errorf("%w: segment header says first entry %d, file name %d", errCorrupt, f, first)
	}
	return nil
}

func recordSize(producer string, data []byte) int {
	return recordHeaderSize + 16 + uvarintLen(uint64(len(producer))) + len(producer) + len(data)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendRecord appends one encoded record to b.
func appendRecord(b []byte, id uint64, lastSeq int64, producer string, data []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.LittleEndian.AppendUint64(b, uint64(lastSeq))
	b = binary.AppendUvarint(b, uint64(len(producer)))
	b = append(b, producer...)
	b = append(b, data...)
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-recordHeaderSize))
	crc := crc32.Update(crc32.Checksum(b[start:start+4], castagnoli), castagnoli, b[start+recordHeaderSize:])
	binary.LittleEndian.PutUint32(b[start+4:], crc)
	return b
}

// readRecord decodes the record at the start of b and returns its encoded
// size.
func readRecord(b []byte) (logRecord, int, error) {
	if len(b) < recordHeaderSize {
		return logRecord{}, 0, fmt.Errorf("%w: %d bytes of a record header", errTruncated, len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	if n < minPayloadSize || n > maxPayloadSize {
		return logRecord{}, 0, fmt.Errorf("%w: length %d", errCorrupt, n)
	}
	end := recordHeaderSize + int(n)
	if end > len(b) {
		return logRecord{}, 0, fmt.Errorf("%w: length %d, %d bytes left", errTruncated, n, len(b)-recordHeaderSize)
	}
	crc := crc32.Update(crc32.Checksum(b[:4], castagnoli), castagnoli, b[recordHeaderSize:end])
	if want := binary.LittleEndian.Uint32(b[4:]); crc != want {
		return logRecord{}, 0, fmt.Errorf("%w: checksum %08x, want %08x", errCorrupt, crc, want)
	}
	p := b[recordHeaderSize:end]
	rec := logRecord{id: binary.LittleEndian.Uint64(p), lastSeq: int64(binary.LittleEndian.Uint64(p[8:]))}
	nameLen, k := binary.Uvarint(p[16:])
	if k <= 0 || nameLen > uint64(len(p)-16-k) {
		return logRecord{}, 0, fmt.Errorf("%w: bad producer name length", errCorrupt)
	}
	at := 16 + k
	rec.producer = p[at : at+int(nameLen) : at+int(nameLen)]
	rec.data = p[at+int(nameLen) : len(p) : len(p)]
	return rec, end, nil
}

// scanSegment checks a whole segment file's bytes: its header and then its
// records, which must carry consecutive ids from first on. It calls fn for
// each valid record and returns the length of the valid prefix and the id
// after the last valid record. err says why the scan stopped before the end
// of b; it is nil when all of b is valid.
func scanSegment(b []byte, ledger, first uint64, fn func(rec logRecord, off int)) (valid int, next uint64, err error) {
	if err := checkSegmentHeader(b, ledger, first); err != nil {
		return 0, first, err
	}
	off, next := segmentHeaderSize, first
	for off < len(b) {
		rec, n, err := readRecord(b[off:])
		if err != nil {
			return off, next, fmt.Errorf("at offset %d: %w", off, err)
		}
		if rec.id != next {
			return off, next, fmt.Errorf("at offset %d: %w: entry id %d, want %d", off, errCorrupt, rec.id, next)
		}
		if fn != nil {
			fn(rec, off)
		}
		off += n
		next++
	}
	return off, next, nil
}

// validRecordAfter reports whether a valid record with an id at or after
// minID starts anywhere in b after offset from. A damaged record followed by
// valid ones is corruption; one followed by nothing valid is a torn tail.
func validRecordAfter(b []byte, from int, minID uint64) bool {
	for off := from + 1; off+recordHeaderSize+minPayloadSize <= len(b); off++ {
		n := binary.LittleEndian.Uint32(b[off:])
		if n < minPayloadSize || int(n) > len(b)-off-recordHeaderSize {
			continue
		}
		if id := binary.LittleEndian.Uint64(b[off+recordHeaderSize:]); id < minID || id-minID > maxIDGap {
			continue
		}
		if _, _, err := readRecord(b[off:]); err == nil {
			return true
		}
	}
	return false
}
