package tracer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
		{"wrong version", reframe([]byte{3, 0}), errBadPayload},
		{"count beyond payload", reframe([]byte{1, 100}), errBadPayload},
		{"count beyond payload, v2", reframe([]byte{2, 100}), errBadPayload},
		{"trailing bytes", reframe(append(appendPayload(nil, sampleEvents()[:1]), 0)), errBadPayload},
		{"trailing bytes, v1", reframe(append(appendPayloadV1(nil, sampleEvents()[:1]), 0)), errBadPayload},
		{"string past end", reframe([]byte{1, 1, 50, 'a'}), errBadPayload},
		{"ref past end", reframe(append([]byte{2, 1, 52, 'a'}, make([]byte, 16)...)), errBadPayload},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := decodeRecord(c.b)
			require.ErrorIs(t, err, c.err)
		})
	}
}

// TestCodecReadsVersion1 replays records written by releases before
// version 2: the golden file was written by the version 1 encoder (main at
// c291207) and appendPayloadV1 below must still produce exactly it.
func TestCodecReadsVersion1(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "outbox-v1.rec"))
	require.NoError(t, err)
	evs := sampleEvents()
	var v1 []byte
	for _, batch := range [][]Event{evs, evs[1:2]} {
		start := len(v1)
		v1 = append(v1, make([]byte, recordHeaderLen)...)
		v1 = appendPayloadV1(v1, batch)
		putHeader(v1[start:], v1[start+recordHeaderLen:])
	}
	require.Equal(t, golden, v1, "the test's version 1 encoder drifted from what was released")

	got, n, err := decodeRecord(golden)
	require.NoError(t, err)
	require.Equal(t, evs, got)
	got, _, err = decodeRecord(golden[n:])
	require.NoError(t, err)
	require.Equal(t, evs[1:2], got)

	// A segment holding version 1 records and then version 2 ones (an
	// outbox left by the old release, appended to by the new) replays all.
	path := filepath.Join(t.TempDir(), "1.seg")
	require.NoError(t, os.WriteFile(path, append(bytes.Clone(golden), appendRecord(nil, evs)...), 0o600))
	r, err := openSegment(path, 0)
	require.NoError(t, err)
	defer func() { _ = r.close() }()
	var all []Event
	for {
		batch, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		all = append(all, batch...) // r.next reuses its array
	}
	require.Equal(t, slices.Concat(evs, evs[1:2], evs), all)
}

// TestCodecVersion2Refs checks the cases of the refs: a value equal to the
// most recent one, to the one before it (events of two kinds interleaved),
// a new one, and "" after a value; and that a record of a busy producer's
// events takes at most half the bytes it took in version 1.
func TestCodecVersion2Refs(t *testing.T) {
	at := time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC)
	var evs []Event
	for i := range 500 {
		ev := Event{Type: Accepted, UID: fmt.Sprintf("01JD%022d", i), Topic: "persistent://billing/pay/orders",
			Key: fmt.Sprintf("order-%d", i%7), Tags: []string{"PAY", fmt.Sprintf("t%d", i%3)}, App: "checkout",
			ClientIP: "10.1.2.3", Node: "sidecar-1", Time: at.Add(time.Duration(i) * 37 * time.Microsecond)}
		if i%2 == 1 {
			ev.Type, ev.MessageID, ev.Cluster, ev.Latency = Persisted, fmt.Sprintf("%d:%d:-1:0", 10+i/250, i), "primary", time.Millisecond
		}
		if i%50 == 0 {
			ev.Properties = map[string]string{"idempotencyKey": fmt.Sprintf("k%d", i), "duplicateRisk": "true"}
		}
		if i == 499 {
			ev.Time = time.Time{} // the zero time after real ones
		}
		evs = append(evs, ev)
	}
	rec := appendRecord(nil, evs)
	got, n, err := decodeRecord(rec)
	require.NoError(t, err)
	require.Equal(t, len(rec), n)
	require.Equal(t, evs, got)
	v1 := appendPayloadV1(nil, evs)
	require.LessOrEqual(t, 2*(len(rec)-recordHeaderLen), len(v1), "v2 %d bytes, v1 %d", len(rec)-recordHeaderLen, len(v1))
}

// appendPayloadV1 is the version 1 encoder, kept to test that the decoder
// still reads what older releases left in an outbox.
func appendPayloadV1(dst []byte, events []Event) []byte {
	dst = append(dst, codecV1)
	dst = binary.AppendUvarint(dst, uint64(len(events)))
	for i := range events {
		ev := &events[i]
		for _, s := range [...]string{ev.ID, string(ev.Type), ev.UID, ev.MessageID, ev.Topic, ev.Key, ev.App,
			ev.ClientIP, ev.Node, ev.Cluster, ev.Subscription, ev.Consumer, ev.Error} {
			dst = appendStringV1(dst, s)
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
			dst = appendStringV1(dst, t)
		}
		dst = binary.AppendUvarint(dst, uint64(len(ev.Properties)))
		for _, k := range slices.Sorted(maps.Keys(ev.Properties)) { // sorted: the golden file is fixed
			dst = appendStringV1(dst, k)
			dst = appendStringV1(dst, ev.Properties[k])
		}
	}
	return dst
}

func appendStringV1(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
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
	f.Add(reframe(appendPayloadV1(nil, evs)))
	f.Add(reframe([]byte{2, 1, 52, 'a'}))
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
