package proxy

import (
	"math"
	"net/http"
	"sync"
	"time"
)

// bucket is a token bucket counted in messages. It is per app and per
// sidecar process: N replicas of a shared gateway allow N times the rate
// (docs/configuration.md, "Apps and tokens").
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens added per second
	burst  float64 // capacity
	tokens float64
	last   time.Time
	now    func() time.Time
}

// newBucket returns a full bucket. A burst of 0 means one second's worth of
// messages (at least 1).
func newBucket(rate float64, burst int, now func() time.Time) *bucket {
	b := float64(burst)
	if burst <= 0 {
		b = math.Max(1, math.Ceil(rate))
	}
	return &bucket{rate: rate, burst: b, tokens: b, last: now(), now: now}
}

// take removes n tokens if they are there and reports ok; otherwise it
// removes nothing and says how long until they would be. A request for more
// than the burst costs the whole burst, so it passes whenever the bucket is
// full instead of never.
func (b *bucket) take(n int) (wait time.Duration, ok bool) {
	cost := math.Min(float64(n), b.burst)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(b.burst, b.tokens+el.Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= cost {
		b.tokens -= cost
		return 0, true
	}
	return time.Duration((cost - b.tokens) / b.rate * float64(time.Second)), false
}

// rateLimited is the 429 for an app that must wait.
func rateLimited(app string, wait time.Duration) *Error {
	if wait < time.Second {
		wait = time.Second
	}
	e := errorf(http.StatusTooManyRequests, CodeRateLimited, "app %q is over its rate limit; retry after the Retry-After delay", app)
	e.RetryAfter = wait
	return e
}
