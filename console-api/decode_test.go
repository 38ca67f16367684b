package consoleapi

import (
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/stretchr/testify/require"
)

func TestParseTimeRange(t *testing.T) {
	ms := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		from, to string
		want     [2]time.Time
		err      bool
	}{
		{"open", "", "", [2]time.Time{}, false},
		{"rfc3339", "2026-03-01T12:00:00Z", "", [2]time.Time{ms, {}}, false},
		{"offset is converted to UTC", "2026-03-01T13:00:00+01:00", "", [2]time.Time{ms, {}}, false},
		{"fraction", "", "2026-03-01T12:00:00.5Z", [2]time.Time{{}, ms.Add(500 * time.Millisecond)}, false},
		{"milliseconds", "1772366400000", "", [2]time.Time{ms, {}}, false},
		{"both", "1772366400000", "2026-03-01T12:00:00.001Z", [2]time.Time{ms, ms.Add(time.Millisecond)}, false},
		{"equal", "2026-03-01T12:00:00Z", "1772366400000", [2]time.Time{}, true},
		{"inverted", "2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z", [2]time.Time{}, true},
		{"date only", "2026-03-01", "", [2]time.Time{}, true},
		{"negative ms", "-5", "", [2]time.Time{}, true},
		{"too many digits", "12345678901234", "", [2]time.Time{}, true},
		{"empty value", "", "", [2]time.Time{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			if tc.from != "" {
				q.Set("from", tc.from)
			}
			if tc.to != "" {
				q.Set("to", tc.to)
			}
			r, err := parseTimeRange(q)
			if tc.err {
				var e *Error
				require.True(t, errors.As(err, &e), "%v", err)
				require.Equal(t, CodeInvalidTimeRange, e.Code)
				require.Equal(t, http.StatusBadRequest, e.Status)
				return
			}
			require.NoError(t, err)
			require.True(t, tc.want[0].Equal(r.From), "from %s", r.From)
			require.True(t, tc.want[1].Equal(r.To), "to %s", r.To)
		})
	}
	// A present but empty parameter is an error, not "open".
	_, err := parseTimeRange(url.Values{"from": {""}})
	require.Error(t, err)
}

// FuzzTimeRange: the decoder never panics; what it accepts is a valid
// range in UTC, and formatting it back gives the same range.
func FuzzTimeRange(f *testing.F) {
	for _, s := range [][2]string{{"2026-03-01T12:00:00Z", "2026-03-01T13:00:00.123456789+02:00"}, {"0", "1"},
		{"1772366400000", ""}, {"", "9999-12-31T23:59:59Z"}, {"2026-02-30T00:00:00Z", "x"}, {"99999999999999", "-1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, from, to string) {
		q := url.Values{"from": {from}, "to": {to}}
		r, err := parseTimeRange(q)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("not a 400: %v", err)
			}
			return
		}
		if !r.From.Before(r.To) || r.From.Location() != time.UTC || r.To.Location() != time.UTC {
			t.Fatalf("accepted %q %q as %v", from, to, r)
		}
		again, err := parseTimeRange(url.Values{"from": {r.From.Format(time.RFC3339Nano)}, "to": {r.To.Format(time.RFC3339Nano)}})
		if err != nil || !again.From.Equal(r.From) || !again.To.Equal(r.To) {
			t.Fatalf("round trip of %v: %v %v", r, again, err)
		}
	})
}

// FuzzCursor: decodeCursor never panics, gives back what encodeCursor
// wrapped, and never accepts a cursor of another query.
func FuzzCursor(f *testing.F) {
	f.Add("search?tag=a", "search?tag=b", "MToxNzcyMzY2NDAwMDAwMDAwOmlk")
	f.Add("timeline:u1", "timeline:u1", "x")
	f.Add("q", "q", "")
	f.Fuzz(func(t *testing.T, q1, q2, store string) {
		c := encodeCursor(q1, store)
		if store == "" {
			if c != "" {
				t.Fatalf("an empty store cursor must stay empty")
			}
			return
		}
		got, err := decodeCursor(q1, c)
		if len(c) <= 512 && (err != nil || got != store) {
			t.Fatalf("round trip %q: %q %v", store, got, err)
		}
		if fingerprint(q1) != fingerprint(q2) {
			if _, err := decodeCursor(q2, c); err == nil {
				t.Fatalf("cursor of %q accepted for %q", q1, q2)
			}
		}
		// Arbitrary input: an *Error 400, or a store cursor.
		if _, err := decodeCursor(q2, store); err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidCursor {
				t.Fatalf("not INVALID_CURSOR: %v", err)
			}
		}
	})
}

// FuzzQueryParams: the search, limit, status and topic decoders never
// panic and fail only with 400s.
func FuzzQueryParams(f *testing.F) {
	f.Add("tag=a&status=acked,nacked&limit=5&topic=t/n/x")
	f.Add("status=%00&limit=-1&topic=persistent://a/b/c/d")
	f.Add("from=1&to=0&cursor=..&uid=%ff")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		check := func(err error) {
			if err == nil {
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code == "" || e.Message == "" {
				t.Fatalf("%q: not a 400 with a code and message: %v", raw, err)
			}
		}
		_ = checkParams(q, searchParams, "status")
		_, err = parseLimit(q, 100)
		check(err)
		types, err := parseTypes(q)
		check(err)
		for _, ty := range types {
			if !ty.Valid() {
				t.Fatalf("accepted type %q", ty)
			}
		}
		if topic := q.Get("topic"); topic != "" {
			n, err := NormalizeTopic(topic)
			check(err)
			if err == nil {
				if again, err := NormalizeTopic(n); err != nil || again != n {
					t.Fatalf("normalize is not idempotent: %q -> %q -> %q %v", topic, n, again, err)
				}
			}
		}
		_, err = decodeCursor("search", q.Get("cursor"))
		check(err)
	})
}

func TestParseRanges(t *testing.T) {
	p := func(l, e int64) Position { return Position{l, e} }
	cases := []struct {
		in   string
		want []Range
		err  bool
	}{
		{"", nil, false},
		{"[]", nil, false},
		{"[(3:5..3:7]]", []Range{{p(3, 5), p(3, 7)}}, false},
		{"[(3:5..3:7],(3:9..3:12]]", []Range{{p(3, 5), p(3, 7)}, {p(3, 9), p(3, 12)}}, false},
		{"[(3:5..3:7], (4:-1..4:2]]", []Range{{p(3, 5), p(3, 7)}, {p(4, -1), p(4, 2)}}, false},
		{"[(3:5..3:5]]", nil, true},
		{"[(3:7..3:5]]", nil, true},
		{"[(3:5..3:7],]", nil, true},
		{"[(3:5..]", nil, true},
		{"(3:5..3:7]", nil, true},
		{"[(a:5..3:7]]", nil, true},
	}
	for _, tc := range cases {
		got, err := ParseRanges(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	c := cursorFromStats("3:4", "[(3:5..3:7],(3:9..3:12]]")
	for entry, want := range map[int64]bool{3: true, 4: true, 5: false, 6: true, 7: true, 8: false, 9: false, 10: true, 12: true, 13: false} {
		require.Equal(t, want, c.Acknowledged(p(3, entry)), "3:%d", entry)
	}
	require.True(t, c.Acknowledged(p(2, 100)), "an older ledger")
	require.False(t, c.Acknowledged(p(4, 0)))
	bad := cursorFromStats("3:4", "[(garbage")
	require.NotEmpty(t, bad.ParseError)
	require.False(t, bad.Acknowledged(p(1, 0)), "an unreadable cursor decides nothing")
}

// FuzzRanges: ParseRanges and ParsePosition never panic, and what they
// accept formats back to text that parses the same.
func FuzzRanges(f *testing.F) {
	f.Add("[(3:5..3:7],(3:9..3:12]]")
	f.Add("[(3:-1..3:0]]")
	f.Add("[(9223372036854775807:1..1:1]]")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRanges(s)
		if err != nil {
			return
		}
		text := "["
		for i, r := range rs {
			if i > 0 {
				text += ","
			}
			if r.Upper.Compare(r.Lower) <= 0 {
				t.Fatalf("empty range accepted: %v", r)
			}
			text += "(" + r.Lower.String() + ".." + r.Upper.String() + "]"
		}
		again, err := ParseRanges(text + "]")
		if err != nil || len(again) != len(rs) {
			t.Fatalf("round trip of %q via %q: %v %v", s, text, again, err)
		}
	})
}

func TestParseMessageID(t *testing.T) {
	for in, want := range map[string]MessageID{
		"12:3":      {Ledger: 12, Entry: 3},
		"12:3:-1":   {Ledger: 12, Entry: 3, Partition: -1, HasPartition: true},
		"12:3:2:7":  {Ledger: 12, Entry: 3, Partition: 2, Batch: 7, HasPartition: true, HasBatch: true},
		"12:3:0:-1": {Ledger: 12, Entry: 3, Batch: -1, HasPartition: true, HasBatch: true},
		"0:0:0:0":   {HasPartition: true, HasBatch: true},
	} {
		got, err := ParseMessageID(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "12", "12:", ":3", "a:b", "12:3:x", "12:3:0:0:0", "+1:2", "1:-2", "1:2:-2", "1:2:3:99999999999"} {
		_, err := ParseMessageID(in)
		require.Error(t, err, in)
	}
}

// FuzzMessageID: ParseMessageID never panics and a full id round-trips.
func FuzzMessageID(f *testing.F) {
	f.Add("12:3:0:0")
	f.Add("12:3:-1")
	f.Add("9223372036854775807:1:1073741824:5")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseMessageID(s)
		if err != nil {
			return
		}
		again, err := ParseMessageID(id.String())
		if err != nil || again.Ledger != id.Ledger || again.Entry != id.Entry || again.Partition != id.Partition || again.Batch != id.Batch {
			t.Fatalf("round trip of %q via %q: %+v %v", s, id.String(), again, err)
		}
	})
}

// TestDecodeBatchEntry: the console names a batch's message by its index
// (wire.DecodeEntry decodes the entry; its tests hold the format).
func TestDecodeBatchEntry(t *testing.T) {
	// Two records: metadata {payload_size: 1, properties {psc-uid: a|b}}.
	record := func(uid byte) []byte {
		md := []byte{0x0a, 0x0c, 0x0a, 0x07, 'p', 's', 'c', '-', 'u', 'i', 'd', 0x12, 0x01, uid, 0x18, 0x01}
		return append(append(binary.BigEndian.AppendUint32(nil, uint32(len(md))), md...), uid)
	}
	body := append(record('a'), record('b')...)
	h := http.Header{}
	h.Set("X-Pulsar-Num-Batch-Message", "2")
	h.Set("X-Pulsar-Publish-Time", "2026-03-01T12:00:00.000+0000")
	h.Set("X-Pulsar-Property", `{"psc-uid":"a","first-only":"1"}`)
	for i, uid := range []string{"a", "b"} {
		m, err := decodeEntry("t", MessageID{Ledger: 1, Entry: 2, Batch: int32(i)}, h, body)
		require.NoError(t, err)
		require.Equal(t, "t", m.Topic)
		require.Equal(t, MessageID{Ledger: 1, Entry: 2, Batch: int32(i)}, m.ID)
		require.Equal(t, uid, m.Properties["psc-uid"])
		require.NotContains(t, m.Properties, "first-only")
		require.Equal(t, uid, string(m.Payload))
		require.Equal(t, 2, m.BatchSize)
		require.Equal(t, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), m.PublishTime)
	}
	_, err := decodeEntry("t", MessageID{Batch: 2}, h, body)
	require.ErrorIs(t, err, ErrNotRetained)
	_, err = decodeEntry("t", MessageID{Batch: 1}, h, body[:len(body)-1])
	require.ErrorIs(t, err, wire.ErrMalformedEntry)

	// Not a batch: the one message, whatever batch index the id names.
	single := http.Header{}
	single.Set("X-Pulsar-Property", `{"psc-uid":"s"}`)
	m, err := decodeEntry("t", MessageID{Ledger: 1, Entry: 3, Batch: -1}, single, []byte("payload"))
	require.NoError(t, err)
	require.Equal(t, "s", m.Properties["psc-uid"])
	require.Equal(t, "payload", string(m.Payload))
	require.Zero(t, m.BatchSize)
}
