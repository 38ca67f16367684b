package spool

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"
)

// recordVersion is the first byte of every encoded Record. A decoder meets a
// higher version only when a newer binary wrote the spool; it then refuses the
// record (ErrUnsupported) instead of guessing.
const recordVersion = 1

// Flag bits of the second byte of an encoded Record.
const (
	flagEventTime = 1 << iota
	flagSpooledAt
	flagsKnown = flagEventTime | flagSpooledAt
)

// Times outside years 0..9999 are refused: RFC 3339 cannot express them and
// they would not survive time.Unix round trips at the extremes.
var (
	minUnix = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxUnix = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
)

// Record is one message that could not reach a cluster in time. The spool
// treats it as opaque except for SpooledAt, which feeds Stats.Oldest.
//
// Times are stored with nanosecond precision and decoded in UTC; a zero time
// means "not set". Empty Tags, Properties and Payload decode as nil.
type Record struct {
	UID        string            // the sidecar's message id; replay dedups by it
	App        string            // the producing app
	Topic      string            // persistent://tenant/namespace/topic
	Key        string            // the message key, may be empty
	Tags       []string          // in the order given
	Properties map[string]string // encoded sorted by key
	EventTime  time.Time         // the producer's event time, zero if none
	SpooledAt  time.Time         // set by Append when zero
	Payload    []byte
}

// MarshalBinary encodes r in the spool's record format (version 1):
//
//	byte     version = 1
//	byte     flags: bit 0 event time present, bit 1 spooled-at present
//	str      uid, app, topic, key          (str = uvarint length, bytes)
//	time     event time   if flag bit 0    (time = varint unix seconds, uvarint nanoseconds)
//	time     spooled at   if flag bit 1
//	uvarint  tag count, then str per tag
//	uvarint  property count, then str key, str value per property, keys strictly ascending
//	uvarint  payload length, payload bytes
func (r Record) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, r.sizeHint()))
}

// AppendBinary appends the encoding described at MarshalBinary to b.
func (r Record) AppendBinary(b []byte) ([]byte, error) {
	var flags byte
	if !r.EventTime.IsZero() {
		if err := checkTime(r.EventTime); err != nil {
			return b, fmt.Errorf("%w: event time: %w", ErrInvalid, err)
		}
		flags |= flagEventTime
	}
	if !r.SpooledAt.IsZero() {
		if err := checkTime(r.SpooledAt); err != nil {
			return b, fmt.Errorf("%w: spooled at: %w", ErrInvalid, err)
		}
		flags |= flagSpooledAt
	}
	b = append(b, recordVersion, flags)
	b = appendString(b, r.UID)
	b = appendString(b, r.App)
	b = appendString(b, r.Topic)
	b = appendString(b, r.Key)
	if flags&flagEventTime != 0 {
		b = appendTime(b, r.EventTime)
	}
	if flags&flagSpooledAt != 0 {
		b = appendTime(b, r.SpooledAt)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Tags)))
	for _, t := range r.Tags {
		b = appendString(b, t)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Properties)))
	for _, k := range slices.Sorted(maps.Keys(r.Properties)) {
		b = appendString(b, k)
		b = appendString(b, r.Properties[k])
	}
	b = binary.AppendUvarint(b, uint64(len(r.Payload)))
	b = append(b, r.Payload...)
	return b, nil
}

// UnmarshalBinary decodes data written by MarshalBinary. It copies what it
// keeps, so data may be reused afterwards. Every malformed input yields an
// error wrapping ErrCorrupt (or ErrUnsupported for a newer version); it never
// panics and never allocates more than len(data) allows.
func (r *Record) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	v := d.byte()
	if d.err == nil && v != recordVersion {
		if v > recordVersion {
			return fmt.Errorf("%w: record version %d", ErrUnsupported, v)
		}
		return fmt.Errorf("%w: record version %d", ErrCorrupt, v)
	}
	flags := d.byte()
	if d.err == nil && flags&^flagsKnown != 0 {
		d.fail("unknown flags %#x", flags)
	}
	var out Record
	out.UID = d.string()
	out.App = d.string()
	out.Topic = d.string()
	out.Key = d.string()
	if flags&flagEventTime != 0 {
		out.EventTime = d.time()
	}
	if flags&flagSpooledAt != 0 {
		out.SpooledAt = d.time()
	}
	if n := d.count(1); n > 0 {
		out.Tags = make([]string, n)
		for i := range out.Tags {
			out.Tags[i] = d.string()
		}
	}
	if n := d.count(2); n > 0 {
		out.Properties = make(map[string]string, n)
		prev := ""
		for i := range n {
			k := d.string()
			v := d.string()
			if d.err == nil && i > 0 && k <= prev {
				d.fail("property keys not strictly ascending at %q", k)
			}
			prev = k
			out.Properties[k] = v
		}
	}
	if p := d.bytes(); len(p) > 0 {
		out.Payload = slices.Clone(p)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return d.err
	}
	*r = out
	return nil
}

func (r Record) sizeHint() int {
	n := 2 + 4*binary.MaxVarintLen64 + len(r.UID) + len(r.App) + len(r.Topic) + len(r.Key) +
		4*binary.MaxVarintLen64 + 3*binary.MaxVarintLen64 + len(r.Payload)
	for _, t := range r.Tags {
		n += binary.MaxVarintLen64 + len(t)
	}
	for k, v := range r.Properties {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	return n
}

func checkTime(t time.Time) error {
	if s := t.Unix(); s < minUnix || s > maxUnix {
		return fmt.Errorf("%s is outside years 0..9999", t.Format(time.RFC3339))
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads the record format; the first error sticks and later reads
// return zero values, so callers check d.err once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: record: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("unexpected end")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads an element count and bounds it by the bytes left, given that
// each element takes at least minBytes.
func (d *decoder) count(minBytes int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/minBytes) {
		d.fail("count %d exceeds remaining %d bytes", n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d exceeds remaining %d bytes", n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= uint64(time.Second) {
		d.fail("nanoseconds %d out of range", nsec)
		return time.Time{}
	}
	if sec < minUnix || sec > maxUnix {
		d.fail("unix seconds %d outside years 0..9999", sec)
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec)).UTC()
	if t.IsZero() {
		// The zero time is how "not set" is spelled; a present flag with the
		// zero instant is not something the encoder writes.
		d.fail("zero time with presence flag")
	}
	return t
}
