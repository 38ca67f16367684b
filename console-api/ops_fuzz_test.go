package consoleapi_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// FuzzResendBody: the resend body parser never panics; what it accepts is
// 1 to MaxResend distinct ids in their canonical form, and what it
// refuses is a 400 with a stable code.
func FuzzResendBody(f *testing.F) {
	for _, s := range []string{
		`{"messageIds":["1:2:-1:-1"]}`, `{"messageIds":["1:2:-1:-1","1:2:-1:-1","01:2:0:3"]}`, `{"messageIds":[]}`,
		`{"messageIds":["1:2"]}`, `{"messageIds":"1:2:-1:-1"}`, `{"messageIds":["1:2:-1:-1"],"x":1}`, `{} {}`, ``, `null`,
		`{"messageIds":["9223372036854775808:0:0:0"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, err := consoleapi.ParseResendBody(body)
		if err != nil {
			var e *consoleapi.Error
			require.True(t, errors.As(err, &e), "%v", err)
			require.Equal(t, http.StatusBadRequest, e.Status)
			require.Contains(t, []string{consoleapi.CodeInvalidParameter, consoleapi.CodeInvalidMessageID}, e.Code)
			return
		}
		require.NotEmpty(t, ids)
		require.LessOrEqual(t, len(ids), consoleapi.MaxResend)
		seen := map[string]bool{}
		for _, id := range ids {
			p, err := wire.ParseMessageID(id)
			require.NoError(t, err)
			require.Equal(t, id, wire.FormatIDParts(p.LedgerID, p.EntryID, p.Partition, p.BatchIdx), "canonical")
			require.False(t, seen[id], "distinct")
			seen[id] = true
		}
	})
}

func TestResendBody(t *testing.T) {
	ids, err := consoleapi.ParseResendBody([]byte(`{"messageIds":["1:2:-1:-1","01:2:-1:-1","3:4:0:1"]}`))
	require.NoError(t, err)
	require.Equal(t, []string{"1:2:-1:-1", "3:4:0:1"}, ids)
	many := `{"messageIds":[`
	for i := range consoleapi.MaxResend + 1 {
		if i > 0 {
			many += ","
		}
		many += `"1:` + string(rune('0'+i%10)) + `:-1:-1"`
	}
	_, err = consoleapi.ParseResendBody([]byte(many + `]}`))
	require.ErrorContains(t, err, "give 1 to 100 ids")
}
