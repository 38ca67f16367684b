package produce

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestNewUIDFormat: canonical UUIDv7 text with the RFC 9562 variant, read
// back the same by github.com/google/uuid, carrying the time it was made.
func TestNewUIDFormat(t *testing.T) {
	before := time.Now().UnixMilli()
	s := NewUID()
	after := time.Now().UnixMilli()
	u, err := uuid.Parse(s)
	require.NoError(t, err)
	require.Equal(t, s, u.String())
	require.Equal(t, uuid.Version(7), u.Version())
	require.Equal(t, uuid.RFC4122, u.Variant())
	sec, nsec := u.Time().UnixTime()
	ms := sec*1000 + nsec/1e6
	require.GreaterOrEqual(t, ms, before)
	require.LessOrEqual(t, ms, after)
}

// TestUIDGeneratorOrder: ids increase strictly even when many come in the
// same millisecond or the clock steps back, and the random part differs.
func TestUIDGeneratorOrder(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	g := &uidGenerator{now: func() time.Time { return now }}
	var prev [16]byte
	rnd := map[[8]byte]bool{}
	for i := range 10000 { // more than 4096 per millisecond: the sequence spills into the next one
		if i == 5000 {
			now = now.Add(-time.Second) // a clock stepping back keeps the order
		}
		var u [16]byte
		g.next(&u)
		require.Positive(t, compareBytes(u[:], prev[:]), "id %d", i)
		require.Equal(t, byte(0x70), u[6]&0xf0)
		require.Equal(t, byte(0x80), u[8]&0xc0)
		prev = u
		rnd[[8]byte(u[8:])] = true
	}
	require.Len(t, rnd, 10000, "random bits repeat")
}

func compareBytes(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// TestNewUIDConcurrent: no duplicates across goroutines.
func TestNewUIDConcurrent(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			local := make([]string, 0, 5000)
			for range 5000 {
				local = append(local, NewUID())
			}
			mu.Lock()
			defer mu.Unlock()
			for _, s := range local {
				require.False(t, seen[s], s)
				seen[s] = true
			}
		})
	}
	wg.Wait()
	require.Len(t, seen, 40000)
}

func BenchmarkNewUID(b *testing.B) {
	for b.Loop() {
		_ = NewUID()
	}
}
