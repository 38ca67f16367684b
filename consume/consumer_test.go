package consume

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCallerName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"", true}, {"host-1/php-fpm-42", true}, {"a b", true}, {strings.Repeat("w", MaxConsumerNameBytes), true},
		{strings.Repeat("w", MaxConsumerNameBytes+1), false}, {" w", false}, {"w ", false}, {"w\x00", false}, {"é", false},
	} {
		c := Caller{App: "billing"}
		err := c.name(tc.name)
		if !tc.ok {
			require.Error(t, err, tc.name)
			require.Equal(t, CodeInvalidConsumer, AsError(err).Code)
			require.Equal(t, "billing", c.consumer(), "a refused name changes nothing")
			continue
		}
		require.NoError(t, err, tc.name)
		want := tc.name
		if want == "" {
			want = "billing"
		}
		require.Equal(t, want, c.consumer())
	}
}

// FuzzCallerName: a name is taken as given or refused with
// INVALID_CONSUMER; a taken one is short printable ASCII.
func FuzzCallerName(f *testing.F) {
	for _, s := range []string{"", "w-1", " w", "w\n", strings.Repeat("x", 200), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Caller{App: "app"}
		err := c.name(s)
		if err != nil {
			var e *Error
			require.True(t, errors.As(err, &e))
			require.Equal(t, CodeInvalidConsumer, e.Code)
			require.Equal(t, "app", c.consumer())
			return
		}
		if s == "" {
			require.Equal(t, "app", c.consumer())
			return
		}
		require.Equal(t, s, c.consumer())
		require.LessOrEqual(t, len(s), MaxConsumerNameBytes)
		require.True(t, printableASCII(s))
	})
}
