package minipulsar

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePartitions(t *testing.T) {
	for _, tc := range []struct {
		body   string
		want   int
		status int
	}{
		{body: "3", want: 3},
		{body: " 12\n", want: 12},
		{body: `{"partitions":4}`, want: 4},
		{body: `{"properties":null,"partitions":2}`, want: 2},
		{body: "", status: http.StatusBadRequest},
		{body: "three", status: http.StatusBadRequest},
		{body: "3.5", status: http.StatusBadRequest},
		{body: `{"partitions":"3"}`, status: http.StatusBadRequest},
		{body: `{"partitions":3`, status: http.StatusBadRequest},
		{body: `{}`, status: http.StatusBadRequest},
		{body: "99999999999", status: http.StatusBadRequest},
		{body: "0", status: http.StatusNotAcceptable},
		{body: "-2", status: http.StatusNotAcceptable},
		{body: `{"partitions":0}`, status: http.StatusNotAcceptable},
		{body: `{"partitions":4294967296}`, status: http.StatusNotAcceptable},
	} {
		t.Run(tc.body, func(t *testing.T) {
			n, err := parsePartitions([]byte(tc.body))
			if tc.status != 0 {
				require.Error(t, err)
				status, reason := statusOf(err)
				require.Equal(t, tc.status, status)
				require.NotEmpty(t, reason)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, n)
		})
	}
}

// FuzzParsePartitions: any body gives a positive count or a 4xx, never a
// panic; an accepted count reads back the same from both body forms.
func FuzzParsePartitions(f *testing.F) {
	for _, s := range []string{"3", `{"partitions":3}`, `{"partitions":3,"properties":{"a":"b"}}`, "", "-1", "1e3", "{", "0x10"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := parsePartitions(body)
		if err != nil {
			if status, _ := statusOf(err); status < 400 || status >= 500 {
				t.Fatalf("status %d for %q", status, body)
			}
			return
		}
		if n <= 0 {
			t.Fatalf("accepted %d partitions from %q", n, body)
		}
		for _, again := range []string{strconv.Itoa(n), `{"partitions":` + strconv.Itoa(n) + `}`} {
			if m, err := parsePartitions([]byte(again)); err != nil || m != n {
				t.Fatalf("%q read back as %d, %v", again, m, err)
			}
		}
	})
}

func TestParseCursorTarget(t *testing.T) {
	def := cursorTarget{latest: true, batchIndex: -1}
	for _, tc := range []struct {
		name string
		body string
		want cursorTarget
		bad  bool
	}{
		{name: "empty is the default", body: "", want: def},
		{name: "null is the default", body: "null", want: def},
		{name: "pulsaradmin Earliest", body: `{"ledgerId":-1,"entryId":-1,"partitionIndex":-1}`, want: cursorTarget{earliest: true, batchIndex: -1}},
		{name: "pulsaradmin Latest", body: `{"ledgerId":9223372036854775807,"entryId":9223372036854775807,"partitionIndex":-1}`, want: cursorTarget{latest: true, batchIndex: -1}},
		{name: "a message", body: `{"ledgerId":5,"entryId":7,"partitionIndex":-1}`, want: cursorTarget{ledger: 5, entry: 7, batchIndex: -1}},
		{name: "inside a batch, excluded", body: `{"ledgerId":5,"entryId":7,"batchIndex":3,"isExcluded":true}`, want: cursorTarget{ledger: 5, entry: 7, batchIndex: 3, excluded: true}},
		{name: "before the first entry of a ledger", body: `{"ledgerId":5,"entryId":-1}`, want: cursorTarget{ledger: 5, entry: 0, batchIndex: -1}},
		{name: "not JSON", body: `ledger 5`, bad: true},
		{name: "wrong types", body: `{"ledgerId":"5","entryId":7}`, bad: true},
		{name: "missing entry", body: `{"ledgerId":5}`, bad: true},
		{name: "number too large", body: `{"ledgerId":9223372036854775808,"entryId":1}`, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCursorTarget([]byte(tc.body), def)
			if tc.bad {
				status, _ := statusOf(err)
				require.Equal(t, http.StatusBadRequest, status)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// FuzzParseCursorTarget: any body is a target or a 400, never a panic; a
// target of a real position survives a round trip through JSON.
func FuzzParseCursorTarget(f *testing.F) {
	for _, s := range []string{"", "null", `{"ledgerId":-1,"entryId":-1}`, `{"ledgerId":3,"entryId":9,"batchIndex":2,"isExcluded":true}`, `{"ledgerId":1}`, `[]`, `{"ledgerId":1e30,"entryId":0}`} {
		f.Add([]byte(s))
	}
	def := cursorTarget{latest: true, batchIndex: -1}
	f.Fuzz(func(t *testing.T, body []byte) {
		ct, err := parseCursorTarget(body, def)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest {
				t.Fatalf("want a 400 for %q, got %v", body, err)
			}
			return
		}
		if ct.earliest || ct.latest {
			return
		}
		if ct.ledger < 0 || ct.ledger == math.MaxInt64 || ct.entry < 0 || ct.batchIndex < -1 {
			t.Fatalf("inconsistent target %+v from %q", ct, body)
		}
		b, _ := json.Marshal(map[string]any{"ledgerId": ct.ledger, "entryId": ct.entry, "batchIndex": ct.batchIndex, "isExcluded": ct.excluded})
		back, err := parseCursorTarget(b, def)
		if err != nil || back != ct {
			t.Fatalf("round trip of %+v gave %+v, %v", ct, back, err)
		}
	})
}
