package consoleapi

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// Decoders of query parameters. Each returns an *Error that tells the
// caller what to fix; all of them are fuzzed.

// checkParams refuses parameters a route does not know (a typo such as
// "tags=" would otherwise widen a search silently) and repeated ones
// (except those in multi).
func checkParams(q url.Values, known []string, multi ...string) error {
	for name, vs := range q {
		if !slices.Contains(known, name) {
			if len(known) == 0 {
				return badParam("unknown parameter %q: this route takes no parameters", truncate(name, 40))
			}
			return badParam("unknown parameter %q; this route takes: %s", truncate(name, 40), strings.Join(known, ", "))
		}
		if len(vs) > 1 && !slices.Contains(multi, name) {
			return badParam("parameter %q is given %d times; give it once", name, len(vs))
		}
	}
	return nil
}

// parseTime reads an RFC 3339 time (fractional seconds allowed) or an
// integer count of milliseconds since the Unix epoch.
func parseTime(name, s string) (time.Time, error) {
	if s != "" && len(s) <= 13 && strings.Trim(s, "0123456789") == "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err == nil {
			return time.UnixMilli(ms).UTC(), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, errorf(http.StatusBadRequest, CodeInvalidTimeRange,
			"%s=%q: want an RFC 3339 time (2026-03-01T12:00:00Z) or milliseconds since the Unix epoch", name, truncate(s, 40))
	}
	return t.UTC(), nil
}

// parseTimeRange reads from and to (both optional); from must be before to.
func parseTimeRange(q url.Values) (tracer.TimeRange, error) {
	var r tracer.TimeRange
	var err error
	if s, ok := q["from"]; ok {
		if r.From, err = parseTime("from", s[0]); err != nil {
			return r, err
		}
	}
	if s, ok := q["to"]; ok {
		if r.To, err = parseTime("to", s[0]); err != nil {
			return r, err
		}
	}
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return r, errorf(http.StatusBadRequest, CodeInvalidTimeRange, "from (%s) must be before to (%s)",
			r.From.Format(time.RFC3339Nano), r.To.Format(time.RFC3339Nano))
	}
	return r, nil
}

// parseLimit reads limit: 1..tracer.MaxPageSize, def when absent.
func parseLimit(q url.Values, def int) (int, error) {
	s, ok := q["limit"]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(s[0])
	if err != nil || n < 1 || n > tracer.MaxPageSize {
		return 0, badParam("limit=%q: want an integer from 1 to %d", truncate(s[0], 20), tracer.MaxPageSize)
	}
	return n, nil
}

// parseTypes reads status: event types, comma-separated or repeated.
func parseTypes(q url.Values) ([]tracer.Type, error) {
	var out []tracer.Type
	for _, v := range q["status"] {
		for s := range strings.SplitSeq(v, ",") {
			t := tracer.Type(strings.TrimSpace(s))
			if !t.Valid() {
				names := make([]string, len(tracer.Types))
				for i, t := range tracer.Types {
					names[i] = string(t)
				}
				return nil, badParam("status=%q: want one or more of %s", truncate(string(t), 40), strings.Join(names, ", "))
			}
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// parseBool reads an optional boolean parameter.
func parseBool(q url.Values, name string, def bool) (bool, error) {
	s, ok := q[name]
	if !ok {
		return def, nil
	}
	b, err := strconv.ParseBool(s[0])
	if err != nil {
		return false, badParam("%s=%q: want true or false", name, truncate(s[0], 20))
	}
	return b, nil
}

// NormalizeTopic returns the full name of a topic given as
// persistent://tenant/ns/topic, non-persistent://tenant/ns/topic or
// tenant/ns/topic (which means persistent).
func NormalizeTopic(s string) (string, error) {
	rest, domain := s, "persistent"
	if d, r, ok := strings.Cut(s, "://"); ok {
		if d != "persistent" && d != "non-persistent" {
			return "", errorf(http.StatusBadRequest, CodeInvalidTopic, "topic %q: the domain must be persistent or non-persistent", truncate(s, 100))
		}
		domain, rest = d, r
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", errorf(http.StatusBadRequest, CodeInvalidTopic, "topic %q: want tenant/namespace/topic or persistent://tenant/namespace/topic", truncate(s, 100))
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || len(p) > 255 || strings.ContainsAny(p, " \t\r\n?#%") {
			return "", errorf(http.StatusBadRequest, CodeInvalidTopic, "topic %q: segment %q is not a valid name", truncate(s, 100), truncate(p, 40))
		}
	}
	return domain + "://" + rest, nil
}

// Page cursors handed out by the console carry a fingerprint of the query
// that produced them, so a cursor passed to another query is refused with
// INVALID_CURSOR instead of silently skipping events:
//
//	<base64url(first 6 bytes of SHA-256(query))>.<the store's cursor>
const cursorFingerprintLen = 8 // base64 characters of 6 bytes

func fingerprint(query string) string {
	sum := sha256.Sum256([]byte(query))
	return base64.RawURLEncoding.EncodeToString(sum[:6])
}

func encodeCursor(query, storeCursor string) string {
	if storeCursor == "" {
		return ""
	}
	return fingerprint(query) + "." + storeCursor
}

// decodeCursor returns the store cursor inside s, checking that s was
// handed out for query. "" is the first page.
func decodeCursor(query, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	fp, rest, ok := strings.Cut(s, ".")
	if !ok || len(fp) != cursorFingerprintLen || rest == "" || len(s) > 512 {
		return "", errorf(http.StatusBadRequest, CodeInvalidCursor, "the cursor is malformed: pass back the next value of a previous answer unchanged")
	}
	if fp != fingerprint(query) {
		return "", errorf(http.StatusBadRequest, CodeInvalidCursor, "the cursor belongs to another query: keep the other parameters as they were, or start again without a cursor")
	}
	return rest, nil
}

// canonicalQuery renders the parameters that define a query, without limit
// and cursor, in a stable order.
func canonicalQuery(route string, q url.Values) string {
	c := url.Values{}
	for k, v := range q {
		if k != "cursor" && k != "limit" {
			c[k] = v
		}
	}
	return route + "?" + c.Encode()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
