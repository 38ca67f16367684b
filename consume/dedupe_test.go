package consume

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/stretchr/testify/require"
)

// keyed is a message as the produce path writes it for an idempotency key;
// risk sets psc-duplicate-risk.
func keyed(app, key string, risk bool, tags ...string) testMsg {
	m := newMsg(tags...)
	m.app = app
	m.props = map[string]string{wire.PropIdempotencyKey: key}
	if risk {
		m.props[wire.PropDuplicateRisk] = "true"
	}
	return m
}

// twoUIDs is the failure issue 12 found: the second copy of one (app, key)
// under a uid of its own (a sidecar died between the broker's ack and Redis
// recording it; the retry claimed the key afresh), and no risk flag.
func twoUIDs(app, key string) (testMsg, testMsg) {
	return keyed(app, key, false, "PAY_1"), keyed(app, key, false, "PAY_1")
}

// The receive answer carries the producing app, the idempotency key and the
// duplicate-risk flag, and still hides every psc-* property.
func TestReceiveTellsAppKeyAndDuplicateRisk(t *testing.T) {
	e := newEnv(t)
	a := e.node()
	ref := newRef("sub")
	sub := a.put(ref, SubscriptionSpec{})
	require.Equal(t, DedupeUID, sub.Dedupe, "uid is the default")

	risky := keyed("billing", "charge-o-1", true, "PAY_1")
	plain := keyed("billing", "charge-o-2", false, "PAY_1")
	unkeyed := newMsg("PAY_1")
	unkeyed.app = "audit"
	unkeyed.props = map[string]string{"currency": "EUR"}
	produce(t, e.client, ref.TopicName(), []testMsg{risky, plain, unkeyed})

	got := a.receiveUntil(ref, 3, 10*time.Second)
	require.Len(t, got, 3)
	byUID := map[string]Message{}
	for _, m := range got {
		byUID[m.UID] = m
		for k := range m.Properties {
			require.NotContains(t, k, wire.ReservedPrefix, "psc-* properties stay hidden")
		}
	}
	r := byUID[risky.uid]
	require.Equal(t, "billing", r.App)
	require.Equal(t, "charge-o-1", r.IdempotencyKey)
	require.True(t, r.DuplicateRisk)
	p := byUID[plain.uid]
	require.Equal(t, "charge-o-2", p.IdempotencyKey)
	require.False(t, p.DuplicateRisk)
	u := byUID[unkeyed.uid]
	require.Equal(t, "audit", u.App)
	require.Empty(t, u.IdempotencyKey)
	require.False(t, u.DuplicateRisk)
	require.Equal(t, map[string]string{"currency": "EUR"}, u.Properties)

	// duplicateRisk is always in the answer, false included, so a PHP
	// consumer can read it without isset().
	_, raw := a.rawReceiveAfterProduce(t, e, ref, keyed("billing", "charge-o-3", false))
	require.Contains(t, raw, `"app":"billing","idempotencyKey":"charge-o-3","duplicateRisk":false`)
	a.ack(ref, got...)
}

// rawPost posts body as app "billing" and returns the status and the body.
func (n *node) rawPost(path, body string) (int, string) {
	n.t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.base+path, strings.NewReader(body))
	require.NoError(n.t, err)
	req.Header.Set(testApp, "billing")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(n.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(n.t, err)
	return resp.StatusCode, string(raw)
}

// rawReceiveAfterProduce produces m and returns the receive answer's body as text.
func (n *node) rawReceiveAfterProduce(t *testing.T, e *env, ref SubscriptionRef, m testMsg) (int, string) {
	t.Helper()
	produce(t, e.client, ref.TopicName(), []testMsg{m})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, body := n.rawPost(subPath(ref)+"/receive", `{"max":1,"waitMs":500}`)
		require.Equal(t, http.StatusOK, st, body)
		if len(body) > len(`{"messages":[]}`) {
			return st, body
		}
	}
	t.Fatalf("%s never arrived", m.uid)
	return 0, ""
}

// With dedupe "key" a subscription drops a second copy of one (app,
// idempotency key) under another uid, whether the first is in flight or
// acknowledged, and still drops copies of one uid; a "uid" subscription of
// the same topic gets both uids (which is why the option exists).
func TestDedupeByKeyDropsCopiesUnderTwoUIDs(t *testing.T) {
	e := newEnv(t)
	a, b := e.node(), e.node()
	ref := newRef("by-key")
	byUID := ref
	byUID.Subscription = "by-uid"
	sub := a.put(ref, SubscriptionSpec{Dedupe: "key", InitialPosition: PositionEarliest})
	require.Equal(t, DedupeKey, sub.Dedupe)
	var got Subscription
	st, eb := a.do(http.MethodGet, subPath(ref), nil, &got)
	require.Equal(t, http.StatusOK, st, "%+v", eb)
	require.Equal(t, DedupeKey, got.Dedupe, "the setting is stored")
	a.put(byUID, SubscriptionSpec{InitialPosition: PositionEarliest})

	first, second := twoUIDs("billing", "charge-o-7")
	otherApp := keyed("shop", "charge-o-7", false, "PAY_1") // same key, another app: another message
	unkeyed := newMsg("PAY_1")
	produce(t, e.client, ref.TopicName(), []testMsg{first, second, otherApp, unkeyed, unkeyed})

	// Receive on one replica, ack on the other (the key-mode ackId must
	// name the key's state on any replica).
	msgs := a.receiveUntil(ref, 3, 10*time.Second)
	require.Equal(t, msgUIDs([]testMsg{first, otherApp, unkeyed}), uids(msgs))
	require.Empty(t, a.receive(ref, 10, 500), "the second uid of (billing, charge-o-7) and the unkeyed copy are dropped")
	require.Equal(t, AckResponse{Acked: 3}, b.ack(ref, msgs...))

	// A third uid of the key after the ack is dropped too.
	third := keyed("billing", "charge-o-7", true, "PAY_1")
	produce(t, e.client, ref.TopicName(), []testMsg{third})
	require.Empty(t, a.receive(ref, 10, 700))
	e.backlogZero(e.broker, ref)
	require.Eventually(t, func() bool { return a.stats(ref).Totals.Duplicates == 3 }, 5*time.Second, 50*time.Millisecond,
		"%+v", a.stats(ref).Totals)

	// Dedupe by uid alone delivers both uids of the key, and the third.
	all := a.receiveUntil(byUID, 5, 10*time.Second)
	require.Equal(t, msgUIDs([]testMsg{first, second, otherApp, unkeyed, third}), uids(all))
	a.ack(byUID, all...)
}

// A nacked message of a key-mode subscription comes back (the nack finds
// the key's lease), and its ack then holds for the other uid.
func TestDedupeByKeyNackRedelivers(t *testing.T) {
	e := newEnv(t)
	a := e.node()
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{Dedupe: "key"})
	first, second := twoUIDs("billing", "charge-o-8")
	produce(t, e.client, ref.TopicName(), []testMsg{first})
	got := a.receiveUntil(ref, 1, 10*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, NackResponse{Nacked: 1}, a.nack(ref, "", got...))
	again := a.receiveUntil(ref, 1, 10*time.Second)
	require.Len(t, again, 1)
	require.Equal(t, first.uid, again[0].UID)
	require.Equal(t, 1, again[0].RedeliveryCount)
	a.ack(ref, again...)
	produce(t, e.client, ref.TopicName(), []testMsg{second})
	require.Empty(t, a.receive(ref, 10, 700))
	e.backlogZero(e.broker, ref)
}

// The exactly-once recipe of docs/produce.md (Idempotency), over HTTP: a billing consumer bills each
// (app, idempotency key) once, whatever copies the topic holds: the same
// uid twice (a replay), two uids of one key without a flag (a crash before
// issue 12's fix), two uids of one key flagged duplicateRisk (Redis down
// and a retry that changed the payload). Either the subscription drops
// them (dedupe "key"), or the consumer does, on the fields the answer
// carries (dedupe "uid").
func TestExactlyOnceRecipeOverHTTP(t *testing.T) {
	e := newEnv(t)
	a := e.node()
	topic := newRef("")

	replayed := keyed("billing", "charge-1", false, "PAY_1")
	crashA, crashB := twoUIDs("billing", "charge-2")
	riskA, riskB := keyed("billing", "charge-3", true, "PAY_1"), keyed("billing", "charge-3", true, "PAY_1")
	unkeyed := newMsg("PAY_1")
	copies := []testMsg{replayed, crashA, riskA, unkeyed, replayed, crashB, riskB, unkeyed}
	const want = 4 // charge-1, charge-2, charge-3, the unkeyed one

	cases := []struct {
		dedupe     string
		clientSide bool
	}{{DedupeKey, false}, {DedupeUID, true}}
	for _, tc := range cases {
		ref := topic
		ref.Subscription = "billing-" + tc.dedupe
		a.put(ref, SubscriptionSpec{Dedupe: tc.dedupe, InitialPosition: PositionEarliest})
	}
	produce(t, e.client, topic.TopicName(), copies)
	for _, tc := range cases {
		t.Run(tc.dedupe, func(t *testing.T) {
			ref := topic
			ref.Subscription = "billing-" + tc.dedupe
			billed := map[string]int{}
			seen := map[string]bool{} // the consumer's own window (recipe for dedupe "uid")
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				msgs := a.receive(ref, 10, 300)
				for _, m := range msgs {
					id := "uid:" + m.UID
					if m.IdempotencyKey != "" {
						id = "key:" + m.App + "\x00" + m.IdempotencyKey
					}
					if tc.clientSide && seen[id] {
						continue // a copy: acknowledge, do not bill
					}
					seen[id] = true
					billed[id]++
				}
				if len(msgs) > 0 {
					a.ack(ref, msgs...)
				}
				if len(billed) == want && len(msgs) == 0 {
					break
				}
			}
			require.Len(t, billed, want)
			for id, n := range billed {
				require.Equal(t, 1, n, "%q billed %d times", id, n)
			}
			e.backlogZero(e.broker, ref)
		})
	}
}
