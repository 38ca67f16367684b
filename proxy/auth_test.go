package proxy

import (
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/fakeclock"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHashToken(t *testing.T) {
	// printf %s abc | sha256sum
	assert.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", HashToken("abc"))
}

func TestPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		match   []string
		nomatch []string
	}{
		{"*", []string{"a/b/c", "x/y/z"}, nil},
		{"pay/*", []string{"pay/settle/a", "pay/refund/b"}, []string{"payx/settle/a", "audit/pay/a"}},
		{"pay/settle/*", []string{"pay/settle/a", "pay/settle/b"}, []string{"pay/refund/a", "pay/settlex/a"}},
		{"pay/settle/orders", []string{"pay/settle/orders"}, []string{"pay/settle/orders2", "pay/settle/order"}},
	} {
		p, err := parsePattern(tc.pattern)
		require.NoError(t, err, tc.pattern)
		split := func(s string) (string, string, string) {
			var parts [3]string
			i := 0
			for j, start := 0, 0; j <= len(s); j++ {
				if j == len(s) || s[j] == '/' {
					parts[i] = s[start:j]
					i++
					start = j + 1
				}
			}
			return parts[0], parts[1], parts[2]
		}
		for _, m := range tc.match {
			assert.True(t, p.match(split(m)), "%s should match %s", tc.pattern, m)
		}
		for _, m := range tc.nomatch {
			assert.False(t, p.match(split(m)), "%s should not match %s", tc.pattern, m)
		}
	}
	for _, bad := range []string{"", "pay", "pay/settle", "*/settle/x", "pay/*/x", "a/b/c/d", "pay/se ttle/*", "pay/settle/x*"} {
		_, err := parsePattern(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestAuthenticate(t *testing.T) {
	a, err := newAuthenticator([]App{
		{Name: "one", TokenSHA256: HashToken("t1"), Produce: []string{"*"}},
		{Name: "two", TokenSHA256: HashToken("t2")},
	}, false, time.Now)
	require.NoError(t, err)
	for auth, want := range map[string]string{
		"Bearer t1": "one", "bearer t2": "two", "BEARER  t1 ": "one",
		"": CodeUnauthenticated, "Bearer": CodeUnauthenticated, "Token t1": CodeUnauthenticated,
		"Bearer t3": CodeInvalidToken, "Bearer " + HashToken("t1"): CodeInvalidToken,
	} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		p, err := a.authenticate(r)
		if err != nil {
			var e *Error
			require.True(t, errors.As(err, &e))
			assert.Equal(t, want, e.Code, "%q", auth)
			assert.Equal(t, http.StatusUnauthorized, e.Status)
			continue
		}
		assert.Equal(t, want, p.name, "%q", auth)
	}
	_, err = newAuthenticator([]App{{Name: "x", TokenSHA256: "nothex"}}, false, time.Now)
	assert.Error(t, err)
	_, err = newAuthenticator([]App{{Name: "x", TokenSHA256: HashToken("a")}}, true, time.Now)
	assert.Error(t, err, "dev mode excludes apps")
}

func TestBucket(t *testing.T) {
	clock := fakeclock.New(testNow)
	b := newBucket(10, 20, clock.Now) // 10 messages/s, burst 20
	_, ok := b.take(15)
	require.True(t, ok)
	wait, ok := b.take(10)
	require.False(t, ok, "5 left, 10 asked")
	assert.Equal(t, 500*time.Millisecond, wait)
	clock.Advance(499 * time.Millisecond)
	_, ok = b.take(10)
	require.False(t, ok)
	clock.Advance(time.Millisecond)
	_, ok = b.take(10)
	require.True(t, ok, "refilled to 10")
	clock.Advance(time.Hour)
	_, ok = b.take(20)
	require.True(t, ok, "refill stops at the burst")
	_, ok = b.take(1)
	require.False(t, ok)

	clock.Advance(time.Hour)
	_, ok = b.take(100)
	require.True(t, ok, "a request larger than the burst passes on a full bucket")
	wait, ok = b.take(100)
	require.False(t, ok)
	assert.Equal(t, 2*time.Second, wait, "and costs the whole burst")

	d := newBucket(0.5, 0, clock.Now)
	assert.Equal(t, 1.0, d.burst, "default burst: one second's worth, at least 1")

	e := rateLimited("app", 100*time.Millisecond)
	assert.Equal(t, time.Second, e.RetryAfter, "Retry-After is at least a second")
	assert.Equal(t, http.StatusTooManyRequests, e.Status)
}

func TestMessageID(t *testing.T) {
	p, err := wire.ParseMessageID("12:3:-1:0")
	require.NoError(t, err)
	assert.Equal(t, wire.MessageIDParts{LedgerID: 12, EntryID: 3, Partition: -1, BatchIdx: 0}, p)
	for _, bad := range []string{"", "1:2:3", "a:2:3:4", "1:2:3:4:5", "1:2:99999999999:0"} {
		_, err := wire.ParseMessageID(bad)
		assert.Error(t, err, bad)
	}
	assert.Empty(t, wire.FormatMessageID(nil))
}

func TestUIDsSortByTime(t *testing.T) {
	prev := produce.NewUID()
	for range 1000 {
		u := produce.NewUID()
		require.Greater(t, u, prev)
		prev = u
	}
	b, err := hex.DecodeString(prev[:8])
	require.NoError(t, err)
	ms := int64(b[0])<<40 | int64(b[1])<<32 | int64(b[2])<<24 | int64(b[3])<<16
	assert.InDelta(t, time.Now().UnixMilli()>>16, ms>>16, 2, "a UUIDv7 starts with the Unix time in milliseconds")
}
