package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConsoleRole: consoleRole is viewer, operator or admin and implies
// the console permission; anything else is refused.
func TestConsoleRole(t *testing.T) {
	app := func(role string) Config {
		c := Default()
		c.Apps = []App{{Name: "a", TokenSHA256: strings.Repeat("ab", 32), ConsoleRole: role}}
		return c
	}
	for _, role := range []string{"viewer", "operator", "admin"} {
		c := app(role)
		require.NoError(t, c.Validate(), role)
		require.True(t, c.Apps[0].Console, "%s implies console: true", role)
	}
	c := app("")
	require.NoError(t, c.Validate())
	require.False(t, c.Apps[0].Console, "no role, no console permission")
	for _, bad := range []string{"Admin", "root", " viewer"} {
		c := app(bad)
		err := c.Validate()
		require.ErrorIs(t, err, ErrInvalid, bad)
		require.ErrorContains(t, err, "consoleRole")
	}
}
