package spool

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
	}{
		{"empty", Record{}},
		{"full", spooled(3)},
		{"unicode and empty strings", Record{UID: "ü-1", Topic: "persistent://租户/ns/t", Tags: []string{"", "标签"}, Properties: map[string]string{"": "", "ключ": "значение"}}},
		{"binary payload", Record{UID: "b", Payload: []byte{0, 1, 2, 0xff, 0}}},
		{"large payload", Record{UID: "big", Payload: []byte(strings.Repeat("x", 1<<20))}},
		{"pre-1970 event time", Record{UID: "old", EventTime: time.Date(1601, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"year 0 and 9999", Record{EventTime: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), SpooledAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"nanoseconds kept", Record{EventTime: time.Unix(1700000000, 123456789).UTC()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.rec.MarshalBinary()
			require.NoError(t, err)
			require.Equal(t, byte(recordVersion), b[0])
			var got Record
			require.NoError(t, got.UnmarshalBinary(b))
			require.Equal(t, tt.rec, got)
		})
	}
}

func TestRecordTimeZoneIsNormalisedToUTC(t *testing.T) {
	loc := time.FixedZone("UTC+8", 8*3600)
	in := Record{EventTime: time.Date(2025, 1, 2, 3, 4, 5, 6, loc)}
	b, err := in.MarshalBinary()
	require.NoError(t, err)
	var out Record
	require.NoError(t, out.UnmarshalBinary(b))
	require.True(t, in.EventTime.Equal(out.EventTime))
	require.Equal(t, time.UTC, out.EventTime.Location())
}

func TestRecordEncodeRejectsUnrepresentableTime(t *testing.T) {
	for _, rec := range []Record{
		{EventTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{SpooledAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		_, err := rec.MarshalBinary()
		require.ErrorIs(t, err, ErrInvalid)
	}
}

func TestRecordDecodeErrors(t *testing.T) {
	valid, err := spooled(1).MarshalBinary()
	require.NoError(t, err)
	// A record with only a version, flags, four empty strings and a property
	// section built by hand.
	withProps := func(props ...string) []byte {
		b := []byte{recordVersion, 0, 0, 0, 0, 0, 0}
		b = binary.AppendUvarint(b, uint64(len(props)/2))
		for _, p := range props {
			b = appendString(b, p)
		}
		return append(b, 0)
	}
	withTime := func(sec int64, nsec uint64) []byte {
		b := []byte{recordVersion, flagEventTime, 0, 0, 0, 0}
		b = binary.AppendVarint(b, sec)
		b = binary.AppendUvarint(b, nsec)
		return append(b, 0, 0, 0)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"version 0", append([]byte{0}, valid[1:]...), ErrCorrupt},
		{"newer version", append([]byte{2}, valid[1:]...), ErrUnsupported},
		{"unknown flag", append([]byte{recordVersion, 0x80}, valid[2:]...), ErrCorrupt},
		{"trailing byte", append(valid[:len(valid):len(valid)], 0), ErrCorrupt},
		{"cut short", valid[:len(valid)-1], ErrCorrupt},
		{"string longer than input", []byte{recordVersion, 0, 200, 'a'}, ErrCorrupt},
		{"huge tag count", append([]byte{recordVersion, 0, 0, 0, 0, 0}, binary.AppendUvarint(nil, 1<<40)...), ErrCorrupt},
		{"bad uvarint", []byte{recordVersion, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrCorrupt},
		{"properties out of order", withProps("b", "1", "a", "2"), ErrCorrupt},
		{"duplicate property", withProps("a", "1", "a", "2"), ErrCorrupt},
		{"nanoseconds out of range", withTime(0, 1e9), ErrCorrupt},
		{"year 10000", withTime(maxUnix+1, 0), ErrCorrupt},
		{"zero time with presence flag", withTime(time.Time{}.Unix(), 0), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Record
			err := r.UnmarshalBinary(tt.in)
			require.ErrorIs(t, err, tt.want)
			require.Equal(t, Record{}, r, "a failed decode must leave the record untouched")
		})
	}
	// The hand-built helpers are right when given valid input.
	var r Record
	require.NoError(t, r.UnmarshalBinary(withProps("a", "1", "b", "2")))
	require.NoError(t, r.UnmarshalBinary(withTime(0, 5)))

	t.Run("every prefix fails", func(t *testing.T) {
		for n := range len(valid) {
			var r Record
			require.ErrorIs(t, r.UnmarshalBinary(valid[:n]), ErrCorrupt, "prefix of %d bytes", n)
		}
	})
}

// FuzzDecodeRecord: decoding never panics; whatever decodes re-encodes to
// something no longer than the input that decodes to the same record.
func FuzzDecodeRecord(f *testing.F) {
	for i := range 4 {
		b, err := spooled(i).MarshalBinary()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{recordVersion, flagsKnown})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Record
		if err := r.UnmarshalBinary(data); err != nil {
			require.Equal(t, Record{}, r)
			return
		}
		b, err := r.MarshalBinary()
		require.NoError(t, err)
		require.LessOrEqual(t, len(b), len(data))
		var again Record
		require.NoError(t, again.UnmarshalBinary(b))
		require.Equal(t, r, again)
	})
}
