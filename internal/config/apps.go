package config

import (
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

var (
	appNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	// segmentRE is Pulsar's rule for tenant, namespace and topic names.
	segmentRE = regexp.MustCompile(`^[A-Za-z0-9_=:.-]+$`)
)

func validateApps(apps []App) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	names := map[string]bool{}
	hashes := map[string]string{}
	for i := range apps {
		a := &apps[i]
		where := fmt.Sprintf("apps[%d] (%s)", i, a.Name)
		if !appNameRE.MatchString(a.Name) {
			bad("apps[%d].name %q: want 1-64 of A-Z a-z 0-9 _ . -", i, a.Name)
		}
		if names[a.Name] {
			bad("%s: duplicate app name", where)
		}
		names[a.Name] = true
		h := strings.ToLower(a.TokenSHA256)
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			bad("%s.tokenSHA256: want the 64 hex digits of the token's SHA-256 (pulsar-sidecar hash-token)", where)
		} else if other, dup := hashes[h]; dup {
			bad("%s.tokenSHA256: same token as app %q; every app needs its own token", where, other)
		} else {
			hashes[h] = a.Name
		}
		a.TokenSHA256 = h
		for j, p := range a.Produce {
			if err := ValidTopicPattern(p); err != nil {
				bad("%s.produce[%d]: %v", where, j, err)
			}
		}
		for j, p := range a.Consume {
			if err := ValidTopicPattern(p); err != nil {
				bad("%s.consume[%d]: %v", where, j, err)
			}
		}
		switch a.ConsoleRole {
		case "", "viewer", "operator", "admin":
			a.Console = a.Console || a.ConsoleRole != ""
		default:
			bad("%s.consoleRole %q: want viewer, operator or admin", where, a.ConsoleRole)
		}
		rl := a.RateLimit
		switch {
		case rl.MessagesPerSecond < 0:
			bad("%s.rateLimit.messagesPerSecond must not be negative", where)
		case rl.Burst < 0:
			bad("%s.rateLimit.burst must not be negative", where)
		case rl.MessagesPerSecond == 0 && rl.Burst != 0:
			bad("%s.rateLimit.burst is set but messagesPerSecond is 0 (no limit)", where)
		}
	}
	return errs
}

// ValidTopicPattern checks a produce permission: "*", "tenant/*",
// "tenant/namespace/*" or "tenant/namespace/topic".
func ValidTopicPattern(p string) error {
	if p == "*" {
		return nil
	}
	parts := strings.Split(p, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("pattern %q: want tenant/*, tenant/namespace/* or tenant/namespace/topic", p)
	}
	for i, s := range parts {
		last := i == len(parts)-1
		if last && s == "*" {
			continue
		}
		if !segmentRE.MatchString(s) {
			return fmt.Errorf("pattern %q: segment %q: want letters, digits or _ = : . - (or * as the last segment)", p, s)
		}
		if len(parts) == 2 && last {
			return fmt.Errorf("pattern %q: a two-segment pattern must end in * (tenant/*)", p)
		}
	}
	return nil
}
