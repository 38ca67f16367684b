package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// App is a producer group: who it is, how it proves it, what it may do.
type App struct {
	Name string
	// TokenSHA256 is the hex SHA-256 of the app's bearer token.
	TokenSHA256 string
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
// every request is the dev app.
type authenticator struct {
	apps   []*principal
	hashes [][]byte // hashes[i] is apps[i]'s token hash, raw bytes
	dev    *principal
}

func newAuthenticator(apps []App, devMode bool, now func() time.Time) (*authenticator, error) {
	a := &authenticator{}
	if devMode {
		if len(apps) > 0 {
			return nil, fmt.Errorf("proxy: dev mode with %d apps configured", len(apps))
		}
		a.dev = &principal{name: DevApp, produce: []pattern{{tenant: "*"}}, consume: []pattern{{tenant: "*"}}, console: true}
		return a, nil
	}
	for _, app := range apps {
		h, err := hex.DecodeString(strings.ToLower(app.TokenSHA256))
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("proxy: app %q: token hash is not 64 hex digits", app.Name)
		}
		p := &principal{name: app.Name, console: app.Console}
		for _, s := range app.Produce {
			pat, err := parsePattern(s)
			if err != nil {
				return nil, fmt.Errorf("proxy: app %q: %w", app.Name, err)
			}
			p.produce = append(p.produce, pat)
		}
		for _, s := range app.Consume {
			pat, err := parsePattern(s)
			if err != nil {
				return nil, fmt.Errorf("proxy: app %q: %w", app.Name, err)
			}
			p.consume = append(p.consume, pat)
		}
		if app.RatePerSecond > 0 {
			p.limiter = newBucket(app.RatePerSecond, app.Burst, now)
		}
		a.apps = append(a.apps, p)
		a.hashes = append(a.hashes, h)
	}
	return a, nil
}

// DevApp is the app every request is served as in dev mode.
const DevApp = "dev"

// authenticate returns the app for the request's bearer token.
func (a *authenticator) authenticate(r *http.Request) (*principal, error) {
	if a.dev != nil {
		return a.dev, nil
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
	for i, want := range a.hashes {
		if subtle.ConstantTimeCompare(sum[:], want) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, errorf(http.StatusUnauthorized, CodeInvalidToken, "the bearer token does not belong to any app")
	}
	return a.apps[found], nil
}
