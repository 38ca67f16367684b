package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// App is a producer group: who it is, how it proves it, what it may do.
type App struct {
	Name string
	// TokenSHA256 is the hex SHA-256 of the app's bearer token.
	TokenSHA256 string
	// Tokens are more tokens of the app (the live registry's: issued,
	// rotated with a grace period). An app may have any number.
	Tokens []Token
	// Produce lists topic patterns: "tenant/ns/topic", "tenant/ns/*",
	// "tenant/*" or "*".
	Produce []string
	// Consume lists topic patterns, as Produce, for the consume API.
	Consume []string
	// Console lets the app read the console API (message lookup, trace,
	// registry, stats).
	Console bool
	// RateLimit in messages per second with a burst; zero means none.
	RatePerSecond float64
	Burst         int
}

// HashToken returns the hex SHA-256 of a token, the form apps are
// configured with. It is what `pulsar-sidecar hash-token` prints, and equals
// `printf %s "$TOKEN" | sha256sum`.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// principal is an authenticated app.
type principal struct {
	name    string
	produce []pattern
	consume []pattern
	console bool
	limiter *bucket // nil: unlimited
}

// pattern is a parsed produce permission.
type pattern struct {
	tenant, namespace, topic string // "*" matches anything; "" when the pattern is shorter
}

func parsePattern(p string) (pattern, error) {
	if p == "*" {
		return pattern{tenant: "*"}, nil
	}
	parts := strings.Split(p, "/")
	switch {
	case len(parts) == 2 && parts[1] == "*" && validSegment(parts[0]) == "":
		return pattern{tenant: parts[0], namespace: "*"}, nil
	case len(parts) == 3 && validSegment(parts[0]) == "" && validSegment(parts[1]) == "" &&
		(parts[2] == "*" || validSegment(parts[2]) == ""):
		return pattern{tenant: parts[0], namespace: parts[1], topic: parts[2]}, nil
	}
	return pattern{}, fmt.Errorf("produce pattern %q: want *, tenant/*, tenant/namespace/* or tenant/namespace/topic", p)
}

func (p pattern) match(tenant, namespace, topic string) bool {
	switch {
	case p.tenant == "*":
		return true
	case p.tenant != tenant:
		return false
	case p.namespace == "*":
		return true
	case p.namespace != namespace:
		return false
	}
	return p.topic == "*" || p.topic == topic
}

func (p *principal) mayProduce(tenant, namespace, topic string) bool {
	return anyMatch(p.produce, tenant, namespace, topic)
}

func (p *principal) mayConsume(tenant, namespace, topic string) bool {
	return anyMatch(p.consume, tenant, namespace, topic)
}

func anyMatch(pats []pattern, tenant, namespace, topic string) bool {
	for _, pat := range pats {
		if pat.match(tenant, namespace, topic) {
			return true
		}
	}
	return false
}

// authenticator finds the app behind a bearer token. In dev mode (no apps)
// every request is the dev app. Its apps can be replaced while it serves
// (SetApps, the live registry): a request sees one whole set, old or new.
type authenticator struct {
	state      atomic.Pointer[authState]
	devAllowed bool // started in dev mode: an empty app set is the dev app again
	now        func() time.Time
	mu         sync.Mutex // serialises setApps
	limiters   map[string]limiter
}

// limiter is an app's rate-limit bucket and the limit it was built for.
type limiter struct {
	b     *bucket
	rate  float64
	burst int
}

// authState is one immutable set of apps.
type authState struct {
	apps   []*principal // one entry per token: an app with two tokens is here twice
	hashes [][]byte     // hashes[i] is the token hash of apps[i], raw bytes
	expiry []time.Time  // expiry[i]: the token is refused from then on; zero: never
	dev    *principal
}

// Token is one of an app's bearer tokens, by its hash.
type Token struct {
	SHA256 string // hex SHA-256 of the token
	// Expires, when set, is when the token stops working (a rotated
	// token's grace period).
	Expires time.Time
}

func newAuthenticator(apps []App, devMode bool, now func() time.Time) (*authenticator, error) {
	if devMode && len(apps) > 0 {
		return nil, fmt.Errorf("proxy: dev mode with %d apps configured", len(apps))
	}
	a := &authenticator{devAllowed: devMode, now: now}
	if err := a.setApps(apps); err != nil {
		return nil, err
	}
	return a, nil
}

// SetApps replaces the apps requests authenticate as, at once, for every
// request that starts after it returns. A server started in dev mode
// leaves it while apps are set and serves the dev app again when they are
// all removed; otherwise no apps means every token is refused. Rate-limit
// buckets of apps whose limit did not change are kept.
func (s *Server) SetApps(apps []App) error { return s.auth.setApps(apps) }

func (a *authenticator) setApps(apps []App) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := &authState{}
	if len(apps) == 0 && a.devAllowed {
		st.dev = &principal{name: DevApp, produce: []pattern{{tenant: "*"}}, consume: []pattern{{tenant: "*"}}, console: true}
		a.state.Store(st)
		return nil
	}
	limiters := map[string]limiter{}
	for _, app := range apps {
		tokens := app.Tokens
		if app.TokenSHA256 != "" {
			tokens = append([]Token{{SHA256: app.TokenSHA256}}, tokens...)
		}
		p := &principal{name: app.Name, console: app.Console}
		for _, s := range app.Produce {
			pat, err := parsePattern(s)
			if err != nil {
				return fmt.Errorf("proxy: app %q: %w", app.Name, err)
			}
			p.produce = append(p.produce, pat)
		}
		for _, s := range app.Consume {
			pat, err := parsePattern(s)
			if err != nil {
				return fmt.Errorf("proxy: app %q: %w", app.Name, err)
			}
			p.consume = append(p.consume, pat)
		}
		if app.RatePerSecond > 0 {
			l, ok := a.limiters[app.Name]
			if !ok || l.rate != app.RatePerSecond || l.burst != app.Burst {
				l = limiter{b: newBucket(app.RatePerSecond, app.Burst, a.now), rate: app.RatePerSecond, burst: app.Burst}
			}
			limiters[app.Name] = l
			p.limiter = l.b
		}
		for _, t := range tokens {
			h, err := hex.DecodeString(strings.ToLower(t.SHA256))
			if err != nil || len(h) != sha256.Size {
				return fmt.Errorf("proxy: app %q: token hash is not 64 hex digits", app.Name)
			}
			st.apps = append(st.apps, p)
			st.hashes = append(st.hashes, h)
			st.expiry = append(st.expiry, t.Expires)
		}
	}
	a.state.Store(st)
	a.limiters = limiters
	return nil
}

// DevApp is the app every request is served as in dev mode.
const DevApp = "dev"

// authenticate returns the app for the request's bearer token.
func (a *authenticator) authenticate(r *http.Request) (*principal, error) {
	st := a.state.Load()
	if st.dev != nil {
		return st.dev, nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "missing Authorization: Bearer <app token>")
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, errorf(http.StatusUnauthorized, CodeUnauthenticated, "the Authorization header must be Bearer <app token>")
	}
	sum := sha256.Sum256([]byte(token))
	// Compare with every app, always, so the time taken says nothing about
	// which hash (or how much of it) matched.
	found := -1
	for i, want := range st.hashes {
		if subtle.ConstantTimeCompare(sum[:], want) == 1 {
			found = i
		}
	}
	if found < 0 || (!st.expiry[found].IsZero() && !a.now().Before(st.expiry[found])) {
		return nil, errorf(http.StatusUnauthorized, CodeInvalidToken, "the bearer token does not belong to any app")
	}
	return st.apps[found], nil
}
