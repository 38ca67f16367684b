package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// ErrTagRange marks a --tags-per-msg value that does not parse.
var ErrTagRange = errors.New("pscload: bad --tags-per-msg")

// maxTagsPerMsg bounds --tags-per-msg; the sidecar's own limit
// (limits.maxTags) may be lower, and then it answers TOO_MANY_TAGS.
const maxTagsPerMsg = 128

// parseTagRange reads "N" or "MIN-MAX" (0 <= MIN <= MAX <= maxTagsPerMsg).
func parseTagRange(s string) (lo, hi int, err error) {
	loText, hiText, isRange := strings.Cut(s, "-")
	if !isRange {
		hiText = loText
	}
	lo, err1 := strconv.Atoi(loText)
	hi, err2 := strconv.Atoi(hiText)
	switch {
	case err1 != nil || err2 != nil || strings.ContainsAny(s, "+ ") || loText == "" || hiText == "":
		return 0, 0, fmt.Errorf("%w: %q: want N or MIN-MAX such as 2 or 0-3", ErrTagRange, s)
	case lo < 0 || hi > maxTagsPerMsg || lo > hi:
		return 0, 0, fmt.Errorf("%w: %q: want 0 <= MIN <= MAX <= %d", ErrTagRange, s, maxTagsPerMsg)
	}
	return lo, hi, nil
}

// mix decides what each scheduled request carries. Every choice is a pure
// function of (seed, slot), so slot j's request can be built again, byte for
// byte, when a later slot retries it.
type mix struct {
	base          string   // target URL without a trailing slash
	paths         []string // one produce path per topic
	form          string   // "raw" or "json"
	batch         int      // messages per JSON request
	payloadSize   int
	keyFraction   float64 // share of original requests with an idempotency key
	retryFraction float64 // share of requests that repeat an earlier keyed request
	tagSet        []string
	tagsMin       int
	tagsMax       int
	msgKeys       int // distinct X-Key values; 0 sends none
	token         string
	keyPrefix     string // makes keys unique per run
	seed          uint64

	mu   sync.Mutex
	done []int64 // ring of keyed slots answered 2xx: what retries repeat
	next int
}

// doneRing is how many answered keyed slots retries choose from.
const doneRing = 4096

// plan is one request to send.
type plan struct {
	slot  int64 // the slot whose message this is (an earlier one for a retry)
	retry bool  // repeats slot's request, which was answered 2xx
	keyed bool
}

// choose decides slot i's request: a retry of an earlier answered keyed
// request (when the mix asks for one and one exists) or slot i's own.
func (m *mix) choose(i int64) plan {
	h := splitmix(m.seed ^ uint64(i)*0x9e3779b97f4a7c15)
	if m.retryFraction > 0 && unit(h) < m.retryFraction {
		m.mu.Lock()
		n := len(m.done)
		var j int64
		if n > 0 {
			j = m.done[int(splitmix(h)%uint64(n))]
		}
		m.mu.Unlock()
		if n > 0 {
			return plan{slot: j, retry: true, keyed: true}
		}
	}
	return plan{slot: i, keyed: m.keyed(i)}
}

// keyed reports whether slot i's own request carries an idempotency key.
func (m *mix) keyed(i int64) bool {
	return m.keyFraction > 0 && unit(splitmix(m.seed^uint64(i)*0xbf58476d1ce4e5b9)) < m.keyFraction
}

// answered records that slot's original keyed request got a 2xx, so later
// retries may repeat it (a retry of a request still in flight would get 409
// IDEMPOTENCY_IN_PROGRESS, which is not what the mix means to measure).
func (m *mix) answered(p plan) {
	if !p.keyed || p.retry {
		return
	}
	m.mu.Lock()
	if len(m.done) < doneRing {
		m.done = append(m.done, p.slot)
	} else {
		m.done[m.next] = p.slot
		m.next = (m.next + 1) % doneRing
	}
	m.mu.Unlock()
}

// message is one message of a request, as the JSON batch form spells it.
type message struct {
	Payload        string   `json:"payload"`
	Key            string   `json:"key,omitempty"`
	Tags           []string `json:"tags,omitempty"`
	IdempotencyKey string   `json:"idempotencyKey,omitempty"`
}

// message builds message b of slot's request.
func (m *mix) message(slot int64, b int, keyed bool) message {
	h := splitmix(m.seed ^ uint64(slot)*0x94d049bb133111eb ^ uint64(b)<<56)
	var msg message
	msg.Payload = m.payload(slot, b)
	if m.msgKeys > 0 {
		msg.Key = "k-" + strconv.FormatUint(h%uint64(m.msgKeys), 10)
	}
	if n := m.tagsMin + int(splitmix(h+1)%uint64(m.tagsMax-m.tagsMin+1)); n > 0 && len(m.tagSet) > 0 {
		// n distinct tags: consecutive ones from a random start in the set.
		n = min(n, len(m.tagSet))
		first := int(splitmix(h+2) % uint64(len(m.tagSet)))
		msg.Tags = make([]string, n)
		for k := range n {
			msg.Tags[k] = m.tagSet[(first+k)%len(m.tagSet)]
		}
	}
	if keyed {
		msg.IdempotencyKey = m.keyPrefix + "-" + strconv.FormatInt(slot, 10)
		if m.form == "json" && m.batch > 1 {
			msg.IdempotencyKey += "-" + strconv.Itoa(b)
		}
	}
	return msg
}

// payload is payloadSize bytes of printable ASCII that name the slot, so a
// message found in a topic says which request sent it.
func (m *mix) payload(slot int64, b int) string {
	head := "pscload " + m.keyPrefix + " " + strconv.FormatInt(slot, 10) + "/" + strconv.Itoa(b) + " "
	if len(head) >= m.payloadSize {
		return head[:m.payloadSize]
	}
	return head + strings.Repeat("x", m.payloadSize-len(head))
}

// request builds the HTTP request for p. The request has no context yet;
// the sender adds its deadline.
func (m *mix) request(p plan) (*http.Request, error) {
	path := m.paths[int(p.slot%int64(len(m.paths)))]
	var (
		body   []byte
		header = http.Header{}
	)
	if m.form == "json" {
		msgs := make([]message, m.batch)
		for b := range msgs {
			msgs[b] = m.message(p.slot, b, p.keyed)
		}
		var err error
		if body, err = json.Marshal(map[string][]message{"messages": msgs}); err != nil {
			return nil, err
		}
		header.Set("Content-Type", "application/json")
	} else {
		msg := m.message(p.slot, 0, p.keyed)
		body = []byte(msg.Payload)
		header.Set("Content-Type", "application/octet-stream")
		if msg.Key != "" {
			header.Set("X-Key", msg.Key)
		}
		if len(msg.Tags) > 0 {
			header.Set("X-Tags", strings.Join(msg.Tags, ","))
		}
		if msg.IdempotencyKey != "" {
			header.Set("Idempotency-Key", msg.IdempotencyKey)
		}
	}
	if m.token != "" {
		header.Set("Authorization", "Bearer "+m.token)
	}
	req, err := http.NewRequest(http.MethodPost, m.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = header
	return req, nil
}

// producePath is the produce API path for "tenant/namespace/topic".
func producePath(topic string) (string, error) {
	parts := strings.Split(topic, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", fmt.Errorf("pscload: topic %q: want tenant/namespace/topic", topic)
	}
	return "/v1/topics/" + url.PathEscape(parts[0]) + "/" + url.PathEscape(parts[1]) + "/" +
		url.PathEscape(parts[2]) + "/messages", nil
}

// splitmix is SplitMix64's finaliser: a cheap, well-mixed hash of x.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit maps h to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }
