package tracer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBreaker(t *testing.T) {
	now := time.Unix(0, 0)
	b := newBreaker(3, 10*time.Second)
	b.now = func() time.Time { return now }

	for range 2 {
		require.True(t, b.allow())
		b.failure()
	}
	require.Equal(t, breakerClosed, b.current())
	require.True(t, b.allow())
	b.success() // a success resets the count
	for range 2 {
		require.True(t, b.allow())
		b.failure()
	}
	require.Equal(t, breakerClosed, b.current())
	require.True(t, b.allow())
	b.failure()
	require.Equal(t, breakerOpen, b.current())
	require.False(t, b.allow())

	now = now.Add(9 * time.Second)
	require.False(t, b.allow(), "still cooling down")
	now = now.Add(time.Second)
	require.True(t, b.allow(), "one trial after the cooldown")
	require.Equal(t, breakerHalfOpen, b.current())
	require.False(t, b.allow(), "only one trial at a time")
	b.failure()
	require.Equal(t, breakerOpen, b.current(), "a failed trial opens it again")
	require.False(t, b.allow())

	now = now.Add(10 * time.Second)
	require.True(t, b.allow())
	b.success()
	require.Equal(t, breakerClosed, b.current())
	require.True(t, b.allow())
	require.EqualValues(t, 2, b.opened)
}
