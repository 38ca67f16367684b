package embedredis

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func sample() *Snapshot {
	return &Snapshot{SavedAt: 1_765_000_000_000, Entries: []Entry{
		{Key: "psc:idem:{dev}:k1", Kind: KindHash, ExpireAt: 1_765_000_060_000, Values: []string{"uid", "01a1fe6b", "state", "done"}},
		{Key: "bin\x00\xff", Kind: KindString, Values: []string{"\x00\x01\xfe not utf-8 \xc3"}},
		{Key: "regs", Kind: KindSet, Values: []string{"a", "b"}},
		{Key: "psc:delay:due", Kind: KindZSet, Values: []string{"m1", "m2"}, Scores: []float64{1765000001, math.Inf(1)}},
		{Key: "q", Kind: KindList, ExpireAt: 1, Values: []string{"x", "x", ""}},
	}}
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, s := range []*Snapshot{{SavedAt: 0}, sample()} {
		got, err := Decode(Encode(s))
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
}

// reseal recomputes the checksum after a test edited the body, so the
// decoder's structural checks are reached.
func reseal(b []byte) []byte {
	body := len(b) - 4
	binary.BigEndian.PutUint32(b[body:], crc32.Checksum(b[:body], crcTable))
	return b
}

func TestDecodeRefuses(t *testing.T) {
	good := Encode(sample())
	empty := Encode(&Snapshot{})
	edit := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty file", nil, "shorter than an empty snapshot"},
		{"truncated", good[:len(good)-1], "checksum"},
		{"torn in the middle", good[:len(good)/2], "checksum"},
		{"bit flip", edit(good, func(b []byte) []byte { b[40] ^= 1; return b }), "checksum"},
		{"not a snapshot", edit(good, func(b []byte) []byte { b[0] = 'X'; return b }), "not a snapshot"},
		{"newer version", edit(good, func(b []byte) []byte { b[8] = 2; return b }), "unknown version 2"},
		{"unknown kind", edit(empty, func(b []byte) []byte { b[headLen] = 9; return reseal(b) }), "unknown kind 9"},
		{"record count", edit(empty, func(b []byte) []byte { b[headLen+1] = 3; return reseal(b) }), "record count 3, read 0"},
		{"trailing bytes", reseal(append(append([]byte(nil), empty[:len(empty)-4]...), 0, 0, 0, 0, 0)), "after the end"},
		{"huge count", reseal(append(append([]byte(magic+"\x01"), make([]byte, 8)...),
			3, 1, 'k', 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0)), "exceeds the file"},
		{"duplicate key", reseal(append(append([]byte(magic+"\x01"), make([]byte, 8)...),
			1, 1, 'k', 0, 1, 1, 'v', 1, 1, 'k', 0, 1, 1, 'v', 0, 2, 0, 0, 0, 0)), `key "k" twice`},
		{"empty set", reseal(append(append([]byte(magic+"\x01"), make([]byte, 8)...),
			3, 1, 'k', 0, 0, 0, 1, 0, 0, 0, 0)), "is empty"},
		{"NaN score", reseal(append(append([]byte(magic+"\x01"), make([]byte, 8)...),
			4, 1, 'k', 0, 1, 1, 'm', 0x7f, 0xf8, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0)), "NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.in)
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrCorrupt), "%v", err)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts encodes to a
// snapshot that decodes to the same thing.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(sample()))
	f.Add(Encode(&Snapshot{}))
	f.Add([]byte(magic + "\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		again, err := Decode(Encode(s))
		if err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
		require.Equal(t, s, again)
	})
}
