package app

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// keyedUID is the uid every copy of the one-message batch body with
// idempotency key must carry, computed as a consumer could not (it needs
// the fingerprint) but as the sidecar does.
func keyedUID(t *testing.T, full, body, key string) (uid, fp string) {
	t.Helper()
	msgs, err := proxy.DecodeBatch([]byte(body), full, ptr(proxy.DefaultLimits()), time.Now())
	require.NoError(t, err)
	fp = msgs[0].Fingerprint()
	return produce.KeyedUID("dev", key, fp), fp
}

// uidsOf lists the psc-uid and psc-duplicate-risk of every message.
func uidsOf(msgs []pulsar.Message) (uids []string, risky []bool) {
	for _, m := range msgs {
		uids = append(uids, m.Properties()[produce.PropUID])
		risky = append(risky, m.Properties()[produce.PropDuplicateRisk] == "true")
	}
	return uids, risky
}

// TestIdempotencyRetryAfterCrash: a sidecar died holding a key's claim
// (its record says in flight under a lease that ends in 700 ms, which is
// what a SIGKILLed owner leaves). A retry waits for the lease, takes the
// key over within the same request and produces with the key's uid,
// flagged duplicateRisk; whether or not the dead sidecar's copy reached
// the broker, every copy carries that one uid.
func TestIdempotencyRetryAfterCrash(t *testing.T) {
	for _, stored := range []bool{false, true} {
		t.Run(fmt.Sprintf("brokerStored=%v", stored), func(t *testing.T) {
			h := start(t, nil)
			p, full := newTopic(t)
			body := `{"messages":[{"payload":"charge 10 EUR","idempotencyKey":"crash-1"}]}`
			uid, fp := keyedUID(t, full, body, "crash-1")
			if stored {
				prod, err := h.client.CreateProducer(pulsar.ProducerOptions{Topic: full})
				require.NoError(t, err)
				_, err = prod.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("charge 10 EUR"),
					Properties: map[string]string{produce.PropUID: uid, produce.PropApp: "dev", produce.PropIdempotencyKey: "crash-1"}})
				require.NoError(t, err)
				prod.Close()
			}
			// The record format of ADR 030: state|owner|leaseUntilMillis|fingerprint|uid|result.
			leaseEnd := time.Now().Add(700 * time.Millisecond)
			rec := fmt.Sprintf("i|dead-sidecar|%d|%s|%s|", leaseEnd.UnixMilli(), fp, uid)
			require.NoError(t, h.redis.Client().Set(context.Background(), proxy.KeyPrefix+"dev:crash-1", rec, time.Hour).Err())

			begin := time.Now()
			res := h.produceJSON(p, body)
			took := time.Since(begin)
			require.Equal(t, http.StatusOK, res.Status, res.Raw)
			assert.Equal(t, uid, res.Results[0].UID, "the retry keeps the key's uid")
			assert.True(t, res.Results[0].DuplicateRisk, "the dead attempt may have reached the broker")
			assert.False(t, time.Now().Before(leaseEnd), "the live lease was respected")
			assert.Less(t, took, 3*time.Second, "taken over as soon as the lease ended, within the request")

			uids, risky := uidsOf(h.readAll(full))
			want := 1
			if stored {
				want = 2
			}
			require.Len(t, uids, want)
			for _, u := range uids {
				assert.Equal(t, uid, u, "every copy carries the key's uid")
			}
			assert.True(t, risky[len(risky)-1], "the retry's copy is flagged psc-duplicate-risk")

			again := h.produceJSON(p, body)
			require.Equal(t, http.StatusOK, again.Status, again.Raw)
			assert.True(t, again.Results[0].Duplicate, "the takeover's result is stored")
			assert.Equal(t, uid, again.Results[0].UID)
		})
	}
}

// TestIdempotencyLeaseRenewedWhileSending: an owner whose broker takes
// four leases to answer keeps its key (renewed every third of the lease):
// a racing retry waits and answers the owner's result; one copy. (The
// broker's delay stays under durability.attemptTimeout, 1 s, past which the
// durable sender itself sends again.)
func TestIdempotencyLeaseRenewedWhileSending(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Idempotency.Lease = 200 * time.Millisecond })
	p, full := newTopic(t)
	require.Equal(t, http.StatusOK, h.produceJSON(p, `{"messages":[{"payload":"warm-up"}]}`).Status)
	h.broker.DelayNextSends(1, 800*time.Millisecond)
	body := `{"messages":[{"payload":"slow charge","idempotencyKey":"slow-1"}]}`
	first := make(chan response, 1)
	go func() { first <- h.produceJSON(p, body) }()
	time.Sleep(450 * time.Millisecond) // two leases into the owner's send
	retry := h.produceJSON(p, body)
	owner := <-first
	require.Equal(t, http.StatusOK, owner.Status, owner.Raw)
	require.Equal(t, http.StatusOK, retry.Status, retry.Raw)
	assert.True(t, retry.Results[0].Duplicate, "the retry waited for the live owner")
	assert.False(t, retry.Results[0].DuplicateRisk)
	assert.Equal(t, owner.Results[0].UID, retry.Results[0].UID)
	assert.Len(t, h.readAll(full), 2, "warm-up plus one charge")
}

// TestIdempotencyLeaseLostWhileSending: the owner is still waiting for a
// slow broker when its lease runs out without a renewal getting through
// (as after a process stall or a partition from Redis longer than the
// lease; here the record's lease is moved into the past). A retry takes the
// key over and produces again; the owner's next renewal finds the key lost.
// Both copies carry the key's uid, the retry's flagged duplicateRisk, and
// the key's result ends up stored.
func TestIdempotencyLeaseLostWhileSending(t *testing.T) {
	h := start(t, nil)
	p, full := newTopic(t)
	require.Equal(t, http.StatusOK, h.produceJSON(p, `{"messages":[{"payload":"warm-up"}]}`).Status)
	h.broker.DelayNextSends(1, 800*time.Millisecond)
	body := `{"messages":[{"payload":"stalled charge","idempotencyKey":"stall-1"}]}`
	uid, _ := keyedUID(t, full, body, "stall-1")
	first := make(chan response, 1)
	go func() { first <- h.produceJSON(p, body) }()

	rdb, ctx, key := h.redis.Client(), context.Background(), proxy.KeyPrefix+"dev:stall-1"
	var rec string
	require.Eventually(t, func() bool { rec = rdb.Get(ctx, key).Val(); return rec != "" }, 2*time.Second, 5*time.Millisecond)
	f := strings.SplitN(rec, "|", 6)
	require.Len(t, f, 6, rec)
	f[2] = strconv.FormatInt(time.Now().Add(-time.Millisecond).UnixMilli(), 10)
	require.NoError(t, rdb.Set(ctx, key, strings.Join(f, "|"), redis.KeepTTL).Err())

	retry := h.produceJSON(p, body)
	owner := <-first
	require.Equal(t, http.StatusOK, owner.Status, owner.Raw)
	require.Equal(t, http.StatusOK, retry.Status, retry.Raw)
	assert.False(t, retry.Results[0].Duplicate, "the retry produced: the owner's lease had ended")
	assert.True(t, retry.Results[0].DuplicateRisk)
	assert.Equal(t, uid, owner.Results[0].UID)
	assert.Equal(t, uid, retry.Results[0].UID)
	uids, risky := uidsOf(h.readAll(full)[1:])
	assert.Equal(t, []string{uid, uid}, uids, "two copies, one uid")
	assert.ElementsMatch(t, []bool{false, true}, risky)
	again := h.produceJSON(p, body)
	assert.True(t, again.Results[0].Duplicate)
	assert.Equal(t, uid, again.Results[0].UID)
}

// TestIdempotencyRedisPause: Redis stalls for 2 s in the middle of a keyed
// request. The request is answered (produced with duplicateRisk, the key's
// uid); its claim lands when Redis continues, owned by nobody alive; the
// client's retries are answered within a lease or two, never a minute of
// 409, and every copy carries the one uid.
func TestIdempotencyRedisPause(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Redis.Timeout = 300 * time.Millisecond })
	p, full := newTopic(t)
	body := `{"messages":[{"payload":"charge","idempotencyKey":"pause-1"}]}`
	uid, _ := keyedUID(t, full, body, "pause-1")
	h.redis.Pause()
	resumed := make(chan struct{})
	go func() {
		time.Sleep(2 * time.Second)
		h.redis.Resume()
		close(resumed)
	}()
	first := h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, first.Status, first.Raw)
	assert.True(t, first.Results[0].DuplicateRisk)
	assert.Equal(t, uid, first.Results[0].UID, "the uid does not need Redis")
	<-resumed

	begin := time.Now()
	var retry response
	for {
		retry = h.produceJSON(p, body)
		if retry.Status != http.StatusConflict {
			break
		}
		require.Less(t, time.Since(begin), 10*time.Second, "409 for too long: %s", retry.Raw)
	}
	require.Equal(t, http.StatusOK, retry.Status, retry.Raw)
	assert.Equal(t, uid, retry.Results[0].UID)
	assert.Less(t, time.Since(begin), 8*time.Second)
	uids, _ := uidsOf(h.readAll(full))
	require.NotEmpty(t, uids)
	for _, u := range uids {
		assert.Equal(t, uid, u)
	}
}

// TestIdempotencyRedisDownThenBack: Redis is gone for a whole request and
// comes back empty. The request and its retry are both produced, under
// the key's one uid.
func TestIdempotencyRedisDownThenBack(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Redis.Timeout = 200 * time.Millisecond })
	p, full := newTopic(t)
	body := `{"messages":[{"payload":"charge","idempotencyKey":"down-1"}]}`
	uid, _ := keyedUID(t, full, body, "down-1")
	h.redis.Stop()
	first := h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, first.Status, first.Raw)
	assert.True(t, first.Results[0].DuplicateRisk)
	h.redis.Restart() // empty
	retry := h.produceJSON(p, body)
	require.Equal(t, http.StatusOK, retry.Status, retry.Raw)
	uids, _ := uidsOf(h.readAll(full))
	assert.Equal(t, []string{uid, uid}, uids)
	again := h.produceJSON(p, body)
	assert.True(t, again.Results[0].Duplicate, "Redis remembers from now on")
}
