package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/fakeclock"
)

func authAs(t *testing.T, a *authenticator, token string) string {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	p, err := a.authenticate(r)
	if err != nil {
		var e *Error
		require.ErrorAs(t, err, &e)
		return e.Code
	}
	return p.name
}

// The live registry replaces the app set: new tokens work at once, removed
// ones are refused, a token past its expiry is refused, and rate-limit
// buckets survive a change that keeps the limit.
func TestSetApps(t *testing.T) {
	clock := fakeclock.New(testNow)
	a, err := newAuthenticator([]App{{Name: "one", TokenSHA256: HashToken("t1"), RatePerSecond: 5}}, false, clock.Now)
	require.NoError(t, err)
	require.Equal(t, "one", authAs(t, a, "t1"))
	bucketBefore := a.state.Load().apps[0].limiter

	require.NoError(t, a.setApps([]App{
		{Name: "one", Tokens: []Token{{SHA256: HashToken("t1b")}, {SHA256: HashToken("t1"), Expires: testNow.Add(time.Minute)}}, RatePerSecond: 5},
		{Name: "two", Tokens: []Token{{SHA256: HashToken("t2")}}},
	}))
	assert.Equal(t, "one", authAs(t, a, "t1b"))
	assert.Equal(t, "one", authAs(t, a, "t1"), "in its grace period")
	assert.Equal(t, "two", authAs(t, a, "t2"))
	assert.Same(t, bucketBefore, a.state.Load().apps[0].limiter, "same limit, same bucket")
	clock.Advance(time.Minute)
	assert.Equal(t, CodeInvalidToken, authAs(t, a, "t1"), "grace over")
	assert.Equal(t, "one", authAs(t, a, "t1b"))

	require.NoError(t, a.setApps([]App{{Name: "two", Tokens: []Token{{SHA256: HashToken("t2")}}}}))
	assert.Equal(t, CodeInvalidToken, authAs(t, a, "t1b"), "revoked")
	require.NoError(t, a.setApps(nil))
	assert.Equal(t, CodeInvalidToken, authAs(t, a, "t2"), "not started in dev mode: nobody")
	assert.Equal(t, CodeUnauthenticated, authAs(t, a, ""))

	require.NoError(t, a.setApps([]App{{Name: "two", Tokens: []Token{{SHA256: HashToken("t2")}}}}))
	assert.Error(t, a.setApps([]App{{Name: "x", Tokens: []Token{{SHA256: "nothex"}}}}))
	assert.Equal(t, "two", authAs(t, a, "t2"), "a refused set changes nothing")
}

// A sidecar started in dev mode serves the dev app while no app is set.
func TestSetAppsDevMode(t *testing.T) {
	a, err := newAuthenticator(nil, true, time.Now)
	require.NoError(t, err)
	assert.Equal(t, DevApp, authAs(t, a, ""))
	require.NoError(t, a.setApps([]App{{Name: "one", Tokens: []Token{{SHA256: HashToken("t1")}}}}))
	assert.Equal(t, CodeUnauthenticated, authAs(t, a, ""), "an app exists: tokens are required")
	assert.Equal(t, "one", authAs(t, a, "t1"))
	require.NoError(t, a.setApps(nil))
	assert.Equal(t, DevApp, authAs(t, a, ""))
}

// Requests authenticate while the app set changes under them: each sees
// a whole set (the race detector checks the swap).
func TestSetAppsConcurrent(t *testing.T) {
	a, err := newAuthenticator([]App{{Name: "one", TokenSHA256: HashToken("t1")}}, false, time.Now)
	require.NoError(t, err)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			apps := []App{{Name: "one", TokenSHA256: HashToken("t1"), RatePerSecond: float64(1 + i%3)}}
			if i%2 == 0 {
				apps = append(apps, App{Name: "two", Tokens: []Token{{SHA256: HashToken("t2")}}})
			}
			assert.NoError(t, a.setApps(apps))
		}
	}()
	for range 2000 {
		require.Equal(t, "one", authAs(t, a, "t1"), "an app in every set always authenticates")
		got := authAs(t, a, "t2")
		require.Contains(t, []string{"two", CodeInvalidToken}, got)
	}
	close(stop)
	<-done
}
