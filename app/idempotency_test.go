package app

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// TestIdempotencySequentialRetries: retries of one request return the
// first result and produce nothing.
func TestIdempotencySequentialRetries(t *testing.T) {
	testIdempotencySequentialRetries(t, start(t, nil))
}

func testIdempotencySequentialRetries(t *testing.T, h *harness) {
	p, full := newTopic(t)
	body := `{"messages":[{"payload":"charge 10 EUR","key":"acct-1","idempotencyKey":"pay-1"},{"payload":"no key"}]}`
	first := h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, first.Status, first.Raw)
	for range 5 {
		again := h.produceJSON(p, body)
		require.Equal(t, http.StatusOK, again.Status, again.Raw)
		r := again.Results[0]
		assert.True(t, r.Duplicate)
		r.Duplicate = false
		assert.Equal(t, first.Results[0], r, "a retry answers the first result")
		assert.NotEqual(t, first.Results[1].UID, again.Results[1].UID, "a message without a key is produced again")
	}
	// The raw form shares the key space: the same message, same key.
	raw := h.do(http.MethodPost, "/v1/topics/"+p+"/messages",
		http.Header{proxy.HeaderKey: {"acct-1"}, proxy.HeaderIdempotencyKey: {"pay-1"}}, []byte("charge 10 EUR"))
	require.Equal(t, http.StatusOK, raw.Status, raw.Raw)
	assert.Equal(t, first.Results[0].UID, raw.Results[0].UID)

	keyed := 0
	for _, m := range h.readAll(full) {
		if m.Properties()[produce.PropIdempotencyKey] == "pay-1" {
			keyed++
		}
	}
	assert.Equal(t, 1, keyed, "one message for the key on the broker")
}

// TestIdempotencyConcurrentRetries: 20 racing requests with one key
// produce one message and all answer with its uid.
func TestIdempotencyConcurrentRetries(t *testing.T) {
	testIdempotencyConcurrentRetries(t, start(t, nil))
}

func testIdempotencyConcurrentRetries(t *testing.T, h *harness) {
	p, full := newTopic(t)
	// Make the first attempt slow, so the others find the key in flight.
	require.Equal(t, http.StatusOK, h.produceJSON(p, `{"messages":[{"payload":"warm-up"}]}`).Status)
	h.broker.DelayNextSends(1, 200*time.Millisecond)

	const n = 20
	body := `{"messages":[{"payload":"charge","idempotencyKey":"race-1"}]}`
	results := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = h.produceJSON(p, body) })
	}
	wg.Wait()
	uids := map[string]int{}
	dups := 0
	for i, r := range results {
		require.Equal(t, http.StatusOK, r.Status, "request %d: %s", i, r.Raw)
		uids[r.Results[0].UID]++
		if r.Results[0].Duplicate {
			dups++
		}
	}
	assert.Len(t, uids, 1, "every request answers the same uid")
	assert.Equal(t, n-1, dups, "all but one answer from the idempotency store")
	msgs := h.readAll(full)
	require.Len(t, msgs, 2, "warm-up plus exactly one charge")
	assert.Equal(t, "charge", string(msgs[1].Payload()))
}

// TestIdempotencyKeyReused: the same key with another message is a 409
// and writes nothing; so is a batch that repeats a key.
func TestIdempotencyKeyReused(t *testing.T) { testIdempotencyKeyReused(t, start(t, nil)) }

func testIdempotencyKeyReused(t *testing.T, h *harness) {
	p, full := newTopic(t)
	require.Equal(t, http.StatusOK, h.produceJSON(p, `{"messages":[{"payload":"a","idempotencyKey":"k"}]}`).Status)
	for name, body := range map[string]string{
		"payload":    `{"messages":[{"payload":"b","idempotencyKey":"k"}]}`,
		"key":        `{"messages":[{"payload":"a","key":"x","idempotencyKey":"k"}]}`,
		"tags":       `{"messages":[{"payload":"a","tags":["T"],"idempotencyKey":"k"}]}`,
		"properties": `{"messages":[{"payload":"a","properties":{"p":"1"},"idempotencyKey":"k"}]}`,
		"delay":      `{"messages":[{"payload":"a","deliverAfter":"1m","idempotencyKey":"k"}]}`,
		// The fresh key of the first message must not stay claimed.
		"batch": `{"messages":[{"payload":"fresh","idempotencyKey":"k2"},{"payload":"b","idempotencyKey":"k"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			res := h.produceJSON(p, body)
			require.Equal(t, http.StatusConflict, res.Status, res.Raw)
			assert.Equal(t, proxy.CodeIdempotencyKeyReused, res.code())
		})
	}
	// Another topic is another message too.
	other, _ := newTopic(t)
	res := h.produceJSON(other, `{"messages":[{"payload":"a","idempotencyKey":"k"}]}`)
	require.Equal(t, http.StatusConflict, res.Status, res.Raw)

	require.Len(t, h.readAll(full), 1)
	// The claim on k2 was given back: k2 works with any message.
	res = h.produceJSON(p, `{"messages":[{"payload":"other","idempotencyKey":"k2"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	assert.False(t, res.Results[0].Duplicate)
}

// TestIdempotencyInFlight: a key held by another request (here a claim
// written straight into Redis, as a sidecar that is still producing would
// leave it) makes the retry wait and then answer 409 with Retry-After;
// when that owner gives up, the next retry takes over with the same uid.
func TestIdempotencyInFlight(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.HTTP.RequestTimeout = 400 * time.Millisecond // the retry waits half of it
	})
	p, full := newTopic(t)
	body := `{"messages":[{"payload":"charge","idempotencyKey":"held"}]}`
	msgs, err := proxy.DecodeBatch([]byte(body), full, ptr(proxy.DefaultLimits()), time.Now())
	require.NoError(t, err)
	rdb := h.redis.Client()
	ctx := context.Background()
	key := proxy.KeyPrefix + "dev:held"
	require.NoError(t, rdb.HSet(ctx, key, "state", "inflight", "fp", msgs[0].Fingerprint(), "uid", "uid-of-first-attempt", "owner", "someone").Err())

	start := time.Now()
	res := h.produceJSON(p, body)
	require.Equal(t, http.StatusConflict, res.Status, res.Raw)
	assert.Equal(t, proxy.CodeIdempotencyInProgress, res.code())
	assert.Equal(t, "1", res.RetryAfter)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "the retry waited for the first attempt")

	// The first attempt failed.
	require.NoError(t, rdb.HSet(ctx, key, "state", "failed").Err())
	require.NoError(t, rdb.HDel(ctx, key, "owner").Err())
	res = h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	assert.Equal(t, "uid-of-first-attempt", res.Results[0].UID)
	got := h.readAll(full)
	require.Len(t, got, 1)
	assert.Equal(t, "uid-of-first-attempt", got[0].Properties()[produce.PropUID])

	// And the result is stored for the next retry.
	again := h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, again.Status, again.Raw)
	assert.True(t, again.Results[0].Duplicate)
	assert.Equal(t, res.Results[0].MessageID, again.Results[0].MessageID)
	ttl, err := rdb.PTTL(ctx, key).Result()
	require.NoError(t, err)
	assert.InDelta(t, (24 * time.Hour).Seconds(), ttl.Seconds(), 60, "results are kept for idempotency.ttl")
}

// TestRedisDown: with Redis unreachable, keyed messages are still
// produced, flagged duplicateRisk in the answer and psc-duplicate-risk on
// the message (ADR 030), and /readyz says Redis is unreachable.
func TestRedisDown(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Redis.Timeout = 200 * time.Millisecond })
	p, full := newTopic(t)
	body := `{"messages":[{"payload":"charge","idempotencyKey":"while-down"},{"payload":"plain"}]}`
	first := h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, first.Status, first.Raw)
	assert.False(t, first.Results[0].DuplicateRisk)

	h.redis.Close()
	res := h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	assert.True(t, res.Results[0].DuplicateRisk, "the keyed message is flagged")
	assert.False(t, res.Results[1].DuplicateRisk, "a message without a key runs no risk the caller did not take")
	assert.Equal(t, produce.StatusPersisted, res.Results[0].Status)

	msgs := h.readAll(full)
	require.Len(t, msgs, 4, "never lose a message: the retry is produced while Redis is down")
	assert.NotContains(t, msgs[0].Properties(), produce.PropDuplicateRisk)
	assert.Equal(t, "true", msgs[2].Properties()[produce.PropDuplicateRisk])
	assert.Equal(t, "while-down", msgs[2].Properties()[produce.PropIdempotencyKey], "consumers dedup by (psc-app, psc-idempotency-key)")
	assert.Equal(t, msgs[0].Properties()[produce.PropIdempotencyKey], msgs[2].Properties()[produce.PropIdempotencyKey])

	ready := h.do(http.MethodGet, "/readyz", nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, ready.Status, ready.Raw)
	assert.Contains(t, ready.Raw, `"redis":"unreachable`)
	assert.Contains(t, ready.Raw, `"durability":"ok"`)
}

func ptr[T any](v T) *T { return &v }
