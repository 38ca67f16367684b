package tracer

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sampleEvents() []Event {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return []Event{
		{ID: "a", Type: Accepted, UID: "u1", Time: at},
		{ID: "b", Type: Delivered, UID: "u1", MessageID: "m", Topic: "t", Key: "k", Tags: []string{"x", "y"},
			App: "app", ClientIP: "1.2.3.4", Node: "n", Cluster: "c", Subscription: "s", Consumer: "co",
			Time: at.Add(time.Second), Latency: -5 * time.Millisecond, Error: "boom\x00\n", Attempt: 7,
			Properties: map[string]string{"k1": "v1", "": "empty key"}},
		{Type: Acked, UID: "ünïcode ✓", Attempt: -1}, // zero time, no id
	}
}

func TestCodecRoundTrip(t *testing.T) {
	evs := sampleEvents()
	rec := appendRecord(nil, evs)
	got, n, err := decodeRecord(rec)
	require.NoError(t, err)
	require.Equal(t, len(rec), n)
	require.Equal(t, evs, got)

	// Two records back to back decode one at a time.
	two := appendRecord(appendRecord(nil, evs[:1]), evs[1:])
	first, n, err := decodeRecord(two)
	require.NoError(t, err)
	require.Equal(t, evs[:1], first)
	second, _, err := decodeRecord(two[n:])
	require.NoError(t, err)
	require.Equal(t, evs[1:], second)

	// Events of a record share one tags array; appending to one event's
	// tags must not change another's.
	rich := []Event{evs[1], evs[1]}
	got, _, err = decodeRecord(appendRecord(nil, rich))
	require.NoError(t, err)
	got[0].Tags = append(got[0].Tags, "added")
	require.Equal(t, []string{"x", "y"}, got[1].Tags)
}

func TestCodecRejectsDamage(t *testing.T) {
	rec := appendRecord(nil, sampleEvents())
	cases := []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, errShortRecord},
		{"short header", rec[:5], errShortRecord},
		{"torn payload", rec[:len(rec)-1], errShortRecord},
		{"zero length", append([]byte{0, 0, 0, 0}, rec[4:]...), errRecordLength},
		{"huge length", append([]byte{0xff, 0xff, 0xff, 0x7f}, rec[4:]...), errRecordLength},
		{"flipped payload byte", flip(rec, len(rec)/2), errBadChecksum},
		{"flipped checksum", flip(rec, 5), errBadChecksum},
		{"wrong version", reframe([]byte{2, 0}), errBadPayload},
		{"count beyond payload", reframe([]byte{1, 100}), errBadPayload},
		{"trailing bytes", reframe(append(appendPayload(nil, sampleEvents()[:1]), 0)), errBadPayload},
		{"string past end", reframe([]byte{1, 1, 50, 'a'}), errBadPayload},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := decodeRecord(c.b)
			require.ErrorIs(t, err, c.err)
		})
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x40
	return b
}

// reframe wraps a raw payload in a valid header, to reach the payload checks.
func reframe(payload []byte) []byte {
	b := make([]byte, recordHeaderLen, recordHeaderLen+len(payload))
	putHeader(b, payload)
	return append(b, payload...)
}

// FuzzDecodeRecord feeds arbitrary bytes to the outbox decoder: it must not
// panic or allocate without bound, and whatever it accepts must encode back
// to a record that decodes to the same events.
func FuzzDecodeRecord(f *testing.F) {
	evs := sampleEvents()
	f.Add(appendRecord(nil, evs))
	f.Add(appendRecord(nil, evs[:1]))
	f.Add(appendRecord(nil, nil))
	f.Add(reframe([]byte{1, 1, 50, 'a'}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		again, _, err := decodeRecord(appendRecord(nil, got))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if fmt.Sprint(again) != fmt.Sprint(got) {
			t.Fatalf("round trip changed events:\n%v\n%v", got, again)
		}
		// Decoding into an array that held other events (the replayer
		// reuses one) must leave nothing of them behind.
		dirty := make([]Event, len(got), len(got)+3)
		for i := range dirty {
			dirty[i] = Event{ID: "stale", Tags: []string{"stale"}, Properties: map[string]string{"stale": "x"}, Attempt: 7, Latency: 9}
		}
		reused, m, err := decodeRecordInto(dirty, b)
		if err != nil || m != n {
			t.Fatalf("decoding into a used array: %d bytes, %v", m, err)
		}
		if fmt.Sprint(reused) != fmt.Sprint(got) {
			t.Fatalf("decoding into a used array changed events:\n%v\n%v", got, reused)
		}
	})
}

// FuzzDecodeCursor checks that any cursor string is either refused with
// ErrBadCursor or re-encodes to itself.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(cursor{TimeUS: 1700000000000000, ID: "abc"}.encode())
	f.Add(cursor{TimeUS: -1, ID: "x:y"}.encode())
	f.Add("")
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, s string) {
		c, ok, err := decodeCursor(s)
		if err != nil || !ok {
			return
		}
		c2, ok, err := decodeCursor(c.encode())
		if err != nil || !ok || c2 != c {
			t.Fatalf("cursor %q decodes to %+v, which does not round-trip: %+v %v", s, c, c2, err)
		}
	})
}

func TestSegmentReaderResumesAndStopsAtTornTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "1.seg")
	evs := sampleEvents()
	b := appendRecord(nil, evs[:1])
	off := int64(len(b))
	b = appendRecord(b, evs[1:])
	b = append(b, appendRecord(nil, evs)[:7]...) // a crash mid-write
	require.NoError(t, os.WriteFile(path, b, 0o600))

	r, err := openSegment(path, off)
	require.NoError(t, err)
	got, err := r.next()
	require.NoError(t, err)
	require.Equal(t, evs[1:], got)
	_, err = r.next()
	require.ErrorIs(t, err, errShortRecord)
	require.NoError(t, r.close())
}

// The segment reader decodes every record into the same array: a record
// after a richer one must come back with nothing of the first left over.
func TestSegmentReaderReusesArrayWithoutLeftovers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "1.seg")
	evs := sampleEvents()
	rich := []Event{evs[1], evs[1], evs[1]}
	plain := []Event{evs[2], evs[0]}
	b := appendRecord(appendRecord(nil, rich), plain)
	require.NoError(t, os.WriteFile(path, b, 0o600))

	r, err := openSegment(path, 0)
	require.NoError(t, err)
	got, err := r.next()
	require.NoError(t, err)
	require.Equal(t, rich, got)
	got, err = r.next()
	require.NoError(t, err)
	require.Equal(t, plain, got)
	_, err = r.next()
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, r.close())
}
