package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// The outbox keeps batches of events as records:
//
//	record  = length:uint32le  crc:uint32le  payload[length]
//	payload = version:byte(1)  count:uvarint  event*count
//	event   = ID Type UID MessageID Topic Key App ClientIP Node Cluster
//	          Subscription Consumer Error   (each a string)
//	          time:varint (Unix nanoseconds, 0 for the zero time)
//	          latency:varint (nanoseconds)  attempt:varint
//	          tags:uvarint string*tags
//	          props:uvarint (key string, value string)*props
//	string  = length:uvarint  bytes
//
// crc is CRC-32C (Castagnoli) of payload. A record is written with one
// write call; a torn record at the end of a segment (a crash mid-write) is
// detected by its length or checksum.

const (
	recordHeaderLen = 8
	codecVersion    = 1
	// maxRecordLen bounds a record's payload, so a corrupt length cannot make
	// the reader allocate without limit.
	maxRecordLen = 64 << 20
	// minEventLen is the smallest encoding of one event (13 empty strings and
	// five one-byte numbers); it bounds count against the payload length.
	minEventLen = 18
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Codec errors.
var (
	errShortRecord  = errors.New("tracer: outbox record truncated")
	errBadChecksum  = errors.New("tracer: outbox record checksum mismatch")
	errRecordLength = errors.New("tracer: outbox record length out of range")
	errBadPayload   = errors.New("tracer: outbox record payload malformed")
)

// appendRecord appends the framed record of events to dst.
func appendRecord(dst []byte, events []Event) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, recordHeaderLen)...)
	dst = appendPayload(dst, events)
	putHeader(dst[start:], dst[start+recordHeaderLen:])
	return dst
}

// putHeader writes the header of payload into h.
func putHeader(h, payload []byte) {
	binary.LittleEndian.PutUint32(h, uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
}

func appendPayload(dst []byte, events []Event) []byte {
	dst = append(dst, codecVersion)
	dst = binary.AppendUvarint(dst, uint64(len(events)))
	for i := range events {
		ev := &events[i]
		for _, s := range [...]string{ev.ID, string(ev.Type), ev.UID, ev.MessageID, ev.Topic, ev.Key, ev.App,
			ev.ClientIP, ev.Node, ev.Cluster, ev.Subscription, ev.Consumer, ev.Error} {
			dst = appendString(dst, s)
		}
		var ns int64
		if !ev.Time.IsZero() {
			ns = ev.Time.UnixNano()
		}
		dst = binary.AppendVarint(dst, ns)
		dst = binary.AppendVarint(dst, int64(ev.Latency))
		dst = binary.AppendVarint(dst, int64(ev.Attempt))
		dst = binary.AppendUvarint(dst, uint64(len(ev.Tags)))
		for _, t := range ev.Tags {
			dst = appendString(dst, t)
		}
		dst = binary.AppendUvarint(dst, uint64(len(ev.Properties)))
		for k, v := range ev.Properties {
			dst = appendString(dst, k)
			dst = appendString(dst, v)
		}
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// parseHeader reads a record header and returns the payload length and
// checksum.
func parseHeader(h []byte) (n int, sum uint32, err error) {
	if len(h) < recordHeaderLen {
		return 0, 0, errShortRecord
	}
	l := binary.LittleEndian.Uint32(h)
	if l == 0 || l > maxRecordLen {
		return 0, 0, fmt.Errorf("%w: %d", errRecordLength, l)
	}
	return int(l), binary.LittleEndian.Uint32(h[4:]), nil
}

// decodeRecord decodes one framed record from the start of b and returns the
// events and the number of bytes it used.
func decodeRecord(b []byte) ([]Event, int, error) { return decodeRecordInto(nil, b) }

// decodeRecordInto is decodeRecord that reuses dst's array when it is large
// enough: the replayer decodes a 500-event record (~140 KB of Event structs)
// many times a second, and a fresh array each time is garbage the collector
// pays for on the data plane's cores, outside the ingest budget. The events
// of the previous record in dst are overwritten.
func decodeRecordInto(dst []Event, b []byte) ([]Event, int, error) {
	n, sum, err := parseHeader(b)
	if err != nil {
		return nil, 0, err
	}
	if len(b)-recordHeaderLen < n {
		return nil, 0, errShortRecord
	}
	payload := b[recordHeaderLen : recordHeaderLen+n]
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, 0, errBadChecksum
	}
	evs, err := decodePayload(dst, payload)
	if err != nil {
		return nil, 0, err
	}
	return evs, recordHeaderLen + n, nil
}

// decodePayload decodes a checked payload into dst's array if it is large
// enough, else into a new one. All strings of the batch share one
// allocation.
func decodePayload(dst []Event, payload []byte) ([]Event, error) {
	d := decoder{buf: string(payload)}
	if v := d.byte(); v != codecVersion {
		return nil, fmt.Errorf("%w: version %d", errBadPayload, v)
	}
	count := d.uvarint()
	if d.err != nil || count > uint64(len(payload)/minEventLen) {
		return nil, fmt.Errorf("%w: event count", errBadPayload)
	}
	var events []Event
	if uint64(cap(dst)) >= count {
		events = dst[:count]
		clear(events) // no tags, properties or fields of the previous record
	} else {
		events = make([]Event, count)
	}
	var tags []string
	for i := range events {
		ev := &events[i]
		ev.ID = d.string()
		ev.Type = Type(d.string())
		ev.UID = d.string()
		ev.MessageID = d.string()
		ev.Topic = d.string()
		ev.Key = d.string()
		ev.App = d.string()
		ev.ClientIP = d.string()
		ev.Node = d.string()
		ev.Cluster = d.string()
		ev.Subscription = d.string()
		ev.Consumer = d.string()
		ev.Error = d.string()
		if ns := d.varint(); ns != 0 {
			ev.Time = time.Unix(0, ns).UTC()
		}
		ev.Latency = time.Duration(d.varint())
		ev.Attempt = int(d.varint())
		if n := d.count(); n > 0 {
			// One array for the tags of many events, not one per event;
			// each event's slice is capped so that appending to it cannot
			// write into the next event's tags.
			if cap(tags)-len(tags) < n {
				tags = make([]string, 0, max(n, 2*len(events)))
			}
			at := len(tags)
			tags = tags[:at+n]
			ev.Tags = tags[at : at+n : at+n]
			for j := range ev.Tags {
				ev.Tags[j] = d.string()
			}
		}
		if n := d.count(); n > 0 {
			ev.Properties = make(map[string]string, n)
			for range n {
				k := d.string()
				ev.Properties[k] = d.string()
			}
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	if d.err == nil && d.off != len(d.buf) {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadPayload, len(d.buf)-d.off)
	}
	return events, d.err
}

// decoder reads the payload encoding; the first error sticks.
type decoder struct {
	buf string
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at offset %d", errBadPayload, what, d.off)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || d.off >= len(d.buf) {
		d.fail("short")
		return 0
	}
	c := d.buf[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.off >= len(d.buf) {
			d.fail("short varint")
			return 0
		}
		c := d.buf[d.off]
		d.off++
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				d.fail("varint overflow")
				return 0
			}
			return x | uint64(c)<<s
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	d.fail("varint overflow")
	return 0
}

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// count reads a list length that must fit in what is left of the buffer.
func (d *decoder) count() int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.buf)-d.off) {
		d.fail("list length")
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.buf)-d.off) {
		d.fail("string length")
		return ""
	}
	s := d.buf[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}
