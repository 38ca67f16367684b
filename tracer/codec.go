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
//	payload = version:byte  count:uvarint  event*count
//
// crc is CRC-32C (Castagnoli) of payload. A record is written with one
// write call; a torn record at the end of a segment (a crash mid-write) is
// detected by its length or checksum.
//
// Version 2 (written since 2026-11-21; half the bytes of version 1 for the
// events of a busy producer, whose topic, app, client, node and cluster
// repeat from event to event):
//
//	event   = ID Type UID MessageID Topic Key App ClientIP Node Cluster
//	          Subscription Consumer Error   (each a ref)
//	          time:varint (Unix nanoseconds minus the previous event's, 0
//	                       standing for the zero time, the first event's
//	                       previous being 0)
//	          latency:varint (nanoseconds)  attempt:varint
//	          tags:uvarint ref*tags
//	          props:uvarint (key ref, value ref)*props
//	ref     = 0            the field's most recent value in this record
//	        | 1            the field's value before that
//	        | n+2:uvarint  followed by n bytes, a new value
//
// "Field" is one of the 13 string fields, the tags (one history for all
// tags), property keys or property values; both values start as "" at the
// start of each record, and each new or second-most-recent value becomes
// the most recent, the old most recent moving to second.
//
// Version 1 (still read, for outboxes left by older releases):
//
//	event   = the 13 string fields as strings, time:varint (Unix
//	          nanoseconds, 0 for the zero time), latency:varint,
//	          attempt:varint, tags:uvarint string*tags,
//	          props:uvarint (key string, value string)*props
//	string  = length:uvarint  bytes

const (
	recordHeaderLen = 8
	codecV1         = 1
	codecV2         = 2
	codecVersion    = codecV2 // what appendRecord writes
	// maxRecordLen bounds a record's payload, so a corrupt length cannot make
	// the reader allocate without limit.
	maxRecordLen = 64 << 20
	// minEventLen is the smallest encoding of one event in either version
	// (13 one-byte strings or refs and five one-byte numbers); it bounds
	// count against the payload length.
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
	var h history
	var prev int64
	for i := range events {
		ev := &events[i]
		f := &h.fields
		dst = f[0].append(dst, ev.ID)
		dst = f[1].append(dst, string(ev.Type))
		dst = f[2].append(dst, ev.UID)
		dst = f[3].append(dst, ev.MessageID)
		dst = f[4].append(dst, ev.Topic)
		dst = f[5].append(dst, ev.Key)
		dst = f[6].append(dst, ev.App)
		dst = f[7].append(dst, ev.ClientIP)
		dst = f[8].append(dst, ev.Node)
		dst = f[9].append(dst, ev.Cluster)
		dst = f[10].append(dst, ev.Subscription)
		dst = f[11].append(dst, ev.Consumer)
		dst = f[12].append(dst, ev.Error)
		var ns int64
		if !ev.Time.IsZero() {
			ns = ev.Time.UnixNano()
		}
		dst = binary.AppendVarint(dst, ns-prev) // wraps, and unwraps on decode
		prev = ns
		dst = binary.AppendVarint(dst, int64(ev.Latency))
		dst = binary.AppendVarint(dst, int64(ev.Attempt))
		dst = binary.AppendUvarint(dst, uint64(len(ev.Tags)))
		for _, t := range ev.Tags {
			dst = h.tags.append(dst, t)
		}
		dst = binary.AppendUvarint(dst, uint64(len(ev.Properties)))
		for k, v := range ev.Properties {
			dst = h.propKeys.append(dst, k)
			dst = h.propValues.append(dst, v)
		}
	}
	return dst
}

// history is what the version 2 refs of one record refer to.
type history struct {
	fields                     [13]recent
	tags, propKeys, propValues recent
}

// recent is one field's two most recent distinct values.
type recent struct{ a, b string }

// append writes s as a ref and makes it the most recent value.
func (r *recent) append(dst []byte, s string) []byte {
	switch s {
	case r.a:
		return append(dst, 0)
	case r.b:
		r.a, r.b = s, r.a
		return append(dst, 1)
	}
	r.a, r.b = s, r.a
	dst = binary.AppendUvarint(dst, uint64(len(s))+2)
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
	v := d.byte()
	if v != codecV1 && v != codecV2 {
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
	d.refs = v == codecV2
	var h history
	var tags []string
	var prev int64
	for i := range events {
		ev := &events[i]
		f := &h.fields
		ev.ID = d.field(&f[0])
		ev.Type = Type(d.field(&f[1]))
		ev.UID = d.field(&f[2])
		ev.MessageID = d.field(&f[3])
		ev.Topic = d.field(&f[4])
		ev.Key = d.field(&f[5])
		ev.App = d.field(&f[6])
		ev.ClientIP = d.field(&f[7])
		ev.Node = d.field(&f[8])
		ev.Cluster = d.field(&f[9])
		ev.Subscription = d.field(&f[10])
		ev.Consumer = d.field(&f[11])
		ev.Error = d.field(&f[12])
		ns := d.varint()
		if d.refs {
			ns += prev // wraps back what the encoder wrapped
			prev = ns
		}
		if ns != 0 {
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
				ev.Tags[j] = d.field(&h.tags)
			}
		}
		if n := d.count(); n > 0 {
			ev.Properties = make(map[string]string, n)
			for range n {
				k := d.field(&h.propKeys)
				ev.Properties[k] = d.field(&h.propValues)
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
	buf  string
	off  int
	err  error
	refs bool // strings are version 2's refs
}

// field reads one string: a ref into r in version 2, in full in version 1.
func (d *decoder) field(r *recent) string {
	if d.refs {
		return d.ref(r)
	}
	return d.string()
}

// ref reads a version 2 ref and makes its value r's most recent.
func (d *decoder) ref(r *recent) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	switch n {
	case 0:
		return r.a
	case 1:
		r.a, r.b = r.b, r.a
		return r.a
	}
	n -= 2
	if n > uint64(len(d.buf)-d.off) {
		d.fail("string length")
		return ""
	}
	s := d.buf[d.off : d.off+int(n)]
	d.off += int(n)
	r.a, r.b = s, r.a
	return s
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
