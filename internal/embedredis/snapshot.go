package embedredis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
)

// Kind is a Redis value type the snapshot keeps.
type Kind uint8

// The kinds the snapshot keeps: every type the sidecar writes. Streams,
// HyperLogLogs and per-field hash TTLs (HEXPIRE) are not kept.
const (
	KindString Kind = 1
	KindHash   Kind = 2
	KindSet    Kind = 3
	KindZSet   Kind = 4
	KindList   Kind = 5
)

// Entry is one key. Values holds a string's value, a hash's fields and
// values alternately, a set's members, a sorted set's members (Scores
// beside them) or a list's items in order.
type Entry struct {
	Key      string
	Kind     Kind
	ExpireAt int64 // Unix milliseconds on the wall clock; 0: no TTL
	Values   []string
	Scores   []float64 // KindZSet only, one per member
}

// Snapshot is the embedded Redis's keyspace (one database) at SavedAt.
type Snapshot struct {
	SavedAt int64 // Unix milliseconds
	Entries []Entry
}

// ErrCorrupt is wrapped by every error Decode returns.
var ErrCorrupt = errors.New("embedredis: corrupt snapshot")

// The file, version 1 (all integers big-endian or unsigned/signed varints):
//
//	"PSCREDIS" | version u8 (1) | savedAt int64 ms
//	record*    : kind u8 (1-5) | key | expireAt varint ms (0: none) | count uvarint | item*
//	             a hash's count is its number of fields (2 items each);
//	             a sorted set's item is a member followed by its score's 8 bytes (float64 bits)
//	end        : kind 0 | number of records uvarint
//	trailer    : CRC-32C of every byte before it, u32
//
// where key and item are a uvarint length and that many bytes. A reader
// checks the CRC before anything else, so a torn or bit-flipped file is
// refused whole, never loaded in part.
const (
	magic   = "PSCREDIS"
	version = 1
	headLen = len(magic) + 1 + 8
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Encode writes s in the version 1 format.
func Encode(s *Snapshot) []byte {
	b := make([]byte, 0, 4096)
	b = append(b, magic...)
	b = append(b, version)
	b = binary.BigEndian.AppendUint64(b, uint64(s.SavedAt))
	str := func(v string) {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	for i := range s.Entries {
		e := &s.Entries[i]
		b = append(b, byte(e.Kind))
		str(e.Key)
		b = binary.AppendVarint(b, e.ExpireAt)
		n := len(e.Values)
		if e.Kind == KindHash {
			n /= 2
		}
		b = binary.AppendUvarint(b, uint64(n))
		for j, v := range e.Values {
			str(v)
			if e.Kind == KindZSet {
				b = binary.BigEndian.AppendUint64(b, math.Float64bits(e.Scores[j]))
			}
		}
	}
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(len(s.Entries)))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decoder reads the body of a snapshot whose checksum was checked.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) fail(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrCorrupt, d.off, fmt.Sprintf(format, args...))
}

func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, d.fail("bad %s", what)
	}
	d.off += n
	return v, nil
}

// count reads an element count, refusing one that the bytes left could not
// hold (each element takes at least min bytes), so a forged count cannot
// make the decoder allocate more than the file's size.
func (d *decoder) count(what string, minBytes int) (int, error) {
	v, err := d.uvarint(what)
	if err != nil {
		return 0, err
	}
	if v > uint64((len(d.b)-d.off)/minBytes) {
		return 0, d.fail("%s %d exceeds the file", what, v)
	}
	return int(v), nil
}

func (d *decoder) str(what string) (string, error) {
	n, err := d.uvarint(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(len(d.b)-d.off) {
		return "", d.fail("%s length %d exceeds the file", what, n)
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s, nil
}

// Decode reads a snapshot written by Encode. Any defect (wrong magic or
// version, checksum mismatch, truncation, a length past the end, an
// unknown kind, a duplicate key, a NaN score, trailing bytes) is an error
// wrapping ErrCorrupt that says where.
func Decode(data []byte) (*Snapshot, error) {
	d := &decoder{b: data}
	if len(data) < headLen+2+4 {
		return nil, d.fail("%d bytes is shorter than an empty snapshot", len(data))
	}
	if string(data[:len(magic)]) != magic {
		return nil, d.fail("not a snapshot (magic %q)", data[:len(magic)])
	}
	if v := data[len(magic)]; v != version {
		d.off = len(magic)
		return nil, d.fail("unknown version %d (this build reads %d)", v, version)
	}
	body := len(data) - 4
	if got, want := crc32.Checksum(data[:body], crcTable), binary.BigEndian.Uint32(data[body:]); got != want {
		d.off = body
		return nil, d.fail("checksum %08x, want %08x", got, want)
	}
	d.b = data[:body]
	s := &Snapshot{SavedAt: int64(binary.BigEndian.Uint64(data[len(magic)+1:]))}
	d.off = headLen
	seen := map[string]struct{}{}
	for {
		if d.off >= len(d.b) {
			return nil, d.fail("no end marker")
		}
		kind := Kind(d.b[d.off])
		if kind == 0 {
			d.off++
			break
		}
		if kind > KindList {
			return nil, d.fail("unknown kind %d", kind)
		}
		d.off++
		e, err := d.entry(kind)
		if err != nil {
			return nil, err
		}
		if _, dup := seen[e.Key]; dup {
			return nil, d.fail("key %q twice", e.Key)
		}
		seen[e.Key] = struct{}{}
		s.Entries = append(s.Entries, e)
	}
	n, err := d.uvarint("record count")
	if err != nil {
		return nil, err
	}
	if n != uint64(len(s.Entries)) {
		return nil, d.fail("record count %d, read %d", n, len(s.Entries))
	}
	if d.off != len(d.b) {
		return nil, d.fail("%d bytes after the end", len(d.b)-d.off)
	}
	return s, nil
}

func (d *decoder) entry(kind Kind) (Entry, error) {
	e := Entry{Kind: kind}
	var err error
	if e.Key, err = d.str("key"); err != nil {
		return e, err
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 || v < 0 {
		return e, d.fail("bad expiry of %q", e.Key)
	}
	d.off += n
	e.ExpireAt = v
	minBytes, per := 1, 1
	switch kind {
	case KindHash:
		minBytes, per = 2, 2
	case KindZSet:
		minBytes = 9
	}
	cnt, err := d.count("element count", minBytes)
	if err != nil {
		return e, err
	}
	if kind == KindString && cnt != 1 {
		return e, d.fail("string %q has %d values", e.Key, cnt)
	}
	if cnt == 0 {
		return e, d.fail("%q is empty (Redis keeps no empty %v)", e.Key, kind)
	}
	e.Values = make([]string, 0, cnt*per)
	if kind == KindZSet {
		e.Scores = make([]float64, 0, cnt)
	}
	for range cnt * per {
		s, err := d.str("element")
		if err != nil {
			return e, err
		}
		e.Values = append(e.Values, s)
		if kind == KindZSet {
			if len(d.b)-d.off < 8 {
				return e, d.fail("truncated score")
			}
			f := math.Float64frombits(binary.BigEndian.Uint64(d.b[d.off:]))
			if math.IsNaN(f) {
				return e, d.fail("NaN score in %q", e.Key)
			}
			d.off += 8
			e.Scores = append(e.Scores, f)
		}
	}
	return e, nil
}

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindHash:
		return "hash"
	case KindSet:
		return "set"
	case KindZSet:
		return "zset"
	case KindList:
		return "list"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// writeFile replaces path with data durably: a temporary file in the same
// directory, fsynced, renamed over path, and the directory fsynced, so a
// crash leaves either the old snapshot or the new one, never a mix.
func writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
