package consume

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

func TestSubscriptionRegistry(t *testing.T) {
	e := newEnv(t)
	a, b := e.node(), e.node(func(o *Options) { o.State.ConfigRefresh = 50 * time.Millisecond })
	ref := newRef("sub")
	path := subPath(ref)

	var sub Subscription
	code, eb := a.do(http.MethodPut, path, `{"tagFilter":"((PAY_1)||PAY_2)","type":"key_shared","ackTimeout":"1m","maxDeliveries":5,
		"deadLetterTopic":"dead","expectedConsumers":["billing","audit"],"initialPosition":"earliest"}`, &sub)
	require.Equal(t, http.StatusCreated, code, "%+v", eb)
	require.Equal(t, "PAY_1 || PAY_2", sub.TagFilter)
	require.Equal(t, TypeKeyShared, sub.Type)
	require.Equal(t, "1m0s", sub.AckTimeout)
	require.Equal(t, 5, sub.MaxDeliveries)
	require.Equal(t, ref.Tenant+"/"+ref.Namespace+"/dead", sub.DeadLetterTopic)
	require.Equal(t, []string{"billing", "audit"}, sub.ExpectedConsumers)
	require.Equal(t, PositionEarliest, sub.InitialPosition)
	require.Equal(t, "billing", sub.UpdatedBy)
	require.EqualValues(t, 1, sub.Version)
	subs, err := e.broker.Subscriptions(ref.TopicName())
	require.NoError(t, err)
	require.Equal(t, []string{"sub"}, subs, "registering creates the Pulsar subscription")

	// Another replica reads the same registration.
	var got Subscription
	code, _ = b.do(http.MethodGet, path, nil, &got)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, sub.TagFilter, got.TagFilter)
	require.Equal(t, sub.CreatedAt.UnixMilli(), got.CreatedAt.UnixMilli())

	// PUT replaces: omitted fields take their defaults; createdAt stays.
	code, _ = b.do(http.MethodPut, path, `{"tagFilter":"PAY_3"}`, &got)
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 2, got.Version)
	require.Equal(t, TypeShared, got.Type)
	require.Equal(t, 16, got.MaxDeliveries)
	require.Equal(t, sub.CreatedAt.UnixMilli(), got.CreatedAt.UnixMilli())

	// The new filter applies on a replica that already consumes.
	other := ref
	other.Subscription = "private"
	b.put(other, SubscriptionSpec{})
	var list SubscriptionList
	code, _ = a.do(http.MethodGet, ref.Tenant+"/"+ref.Namespace+"/"+ref.Topic+"/subscriptions", nil, &list)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, list.Subscriptions, 2)
	code, _ = a.do(http.MethodGet, ref.Tenant+"/"+ref.Namespace+"/"+ref.Topic+"/subscriptions", nil, &list, "reader")
	require.Equal(t, http.StatusOK, code)
	require.Len(t, list.Subscriptions, 1, "only what the app may consume is listed")

	code, _ = a.do(http.MethodDelete, path, nil, nil)
	require.Equal(t, http.StatusNoContent, code)
	code, eb = b.do(http.MethodGet, path, nil, nil)
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, CodeSubscriptionNotFound, eb.Code)
	time.Sleep(100 * time.Millisecond) // b's cache refresh
	code, eb = b.do(http.MethodPost, path+"/receive", `{}`, nil)
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, CodeSubscriptionNotFound, eb.Code)
	code, _ = a.do(http.MethodDelete, path, nil, nil)
	require.Equal(t, http.StatusNotFound, code)
}

func TestFilterUpdateTakesEffect(t *testing.T) {
	e := newEnv(t)
	a := e.node(func(o *Options) { o.State.ConfigRefresh = 50 * time.Millisecond })
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_1"})
	m1, m2 := newMsg("PAY_1"), newMsg("PAY_2")
	produce(t, e.client, ref.TopicName(), []testMsg{m1, m2})
	got := a.receiveUntil(ref, 1, 5*time.Second)
	require.Equal(t, []string{m1.uid}, uids(got))
	a.ack(ref, got...)
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_2"})
	m3, m4 := newMsg("PAY_1"), newMsg("PAY_2")
	produce(t, e.client, ref.TopicName(), []testMsg{m3, m4})
	got = a.receiveUntil(ref, 1, 5*time.Second)
	require.Equal(t, []string{m4.uid}, uids(got))
	require.Empty(t, a.receive(ref, 10, 300))
	a.ack(ref, got...)
	e.backlogZero(e.broker, ref)
}

// TestClientErrors checks that every mistake a caller can make gets a clear
// 4xx with a stable code, and that nothing is changed by it.
func TestClientErrors(t *testing.T) {
	e := newEnv(t)
	clk := minipulsar.NewFakeClock(time.Now())
	a := e.node(fakeClock(clk), func(o *Options) { o.Limits.MaxBodyBytes = 4096; o.State.DedupWindow = 10 * time.Minute })
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_1"})
	otherRef := ref
	otherRef.Subscription = "other"
	a.put(otherRef, SubscriptionSpec{})
	produce(t, e.client, ref.TopicName(), []testMsg{newMsg("PAY_1"), newMsg("PAY_1")})
	mine := a.receiveUntil(ref, 2, 5*time.Second)
	require.Len(t, mine, 2)
	foreign := a.receiveUntil(otherRef, 1, 5*time.Second)
	require.NotEmpty(t, foreign)

	p := subPath(ref)
	tampered := []byte(mine[0].AckID)
	tampered[10] ^= 1
	if tampered[10] == '-' || tampered[10] == '_' || !isB64(tampered[10]) {
		tampered[10] = 'A'
	}
	raw, _ := base64.RawURLEncoding.DecodeString(mine[0].AckID)
	raw[len(raw)-1] ^= 0xff
	forged := base64.RawURLEncoding.EncodeToString(raw)
	otherSecret, err := newSigner([]byte("another-deployment-secret"), nil)
	require.NoError(t, err)
	a0, err := a.svc.signer.Decode(mine[0].AckID)
	require.NoError(t, err)
	alien := otherSecret.Encode(&a0)
	long := strings.Repeat("x", 5000)

	cases := []struct {
		name, method, path, body, app string
		status                        int
		code                          string
		msg                           string
	}{
		{"bad filter", "PUT", p, `{"tagFilter":"PAY_1 && (PAY_2"}`, "", 400, CodeInvalidTagFilter, "tagFilter 15:15: unexpected end"},
		{"bad filter token", "PUT", p, `{"tagFilter":"PAY_1 || )"}`, "", 400, CodeInvalidTagFilter, "9:10"},
		{"bad type", "PUT", p, `{"type":"exclusive"}`, "", 400, CodeInvalidSubscriptionType, "exclusive"},
		{"bad ack timeout", "PUT", p, `{"ackTimeout":"10ms"}`, "", 400, CodeInvalidAckTimeout, "10ms"},
		{"bad max deliveries", "PUT", p, `{"maxDeliveries":-1}`, "", 400, CodeInvalidMaxDeliveries, "-1"},
		{"dead letter is the topic", "PUT", p, `{"deadLetterTopic":"` + ref.Topic + `"}`, "", 400, CodeInvalidDeadLetterTopic, "own topic"},
		{"dead letter malformed", "PUT", p, `{"deadLetterTopic":"a/b"}`, "", 400, CodeInvalidDeadLetterTopic, "tenant/namespace/topic"},
		{"expected consumers", "PUT", p, `{"expectedConsumers":[""]}`, "", 400, CodeInvalidExpectedConsumers, "expectedConsumers[0]"},
		{"initial position", "PUT", p, `{"initialPosition":"middle"}`, "", 400, CodeInvalidInitialPosition, "middle"},
		{"dedupe", "PUT", p, `{"dedupe":"payload"}`, "", 400, CodeInvalidDedupe, `"payload": want "uid" or "key"`},
		{"unknown field", "PUT", p, `{"filter":"PAY_1"}`, "", 400, CodeUnknownField, "filter"},
		{"not json", "PUT", p, `tagFilter=PAY_1`, "", 400, CodeInvalidJSON, "JSON object"},
		{"wrong type", "PUT", p, `{"maxDeliveries":"3"}`, "", 400, CodeInvalidJSON, "maxDeliveries"},
		{"trailing data", "PUT", p, `{"tagFilter":"PAY_1"} {}`, "", 400, CodeInvalidJSON, "after the JSON object"},
		{"too large", "PUT", p, `{"tagFilter":"` + long + `"}`, "", 413, CodeRequestTooLarge, "4096"},
		{"bad topic", "PUT", "t/n/bad topic/subscriptions/s", `{}`, "", 400, CodeInvalidTopic, "topic"},
		{"bad subscription", "POST", ref.Tenant + "/" + ref.Namespace + "/" + ref.Topic + "/subscriptions/a:b/receive", `{}`, "", 400, CodeInvalidSubscription, "a:b"},
		{"unknown subscription receive", "POST", subPath(newRef("nope")) + "/receive", `{}`, "", 404, CodeSubscriptionNotFound, "PUT it first"},
		{"unknown subscription ack", "POST", subPath(newRef("nope")) + "/ack", `{"ackIds":["x"]}`, "", 404, CodeSubscriptionNotFound, "nope"},
		{"unknown subscription nack", "POST", subPath(newRef("nope")) + "/nack", `{"ackIds":["x"]}`, "", 404, CodeSubscriptionNotFound, "nope"},
		{"unknown subscription stats", "GET", subPath(newRef("nope")) + "/stats", "", "", 404, CodeSubscriptionNotFound, "nope"},
		{"unknown subscription get", "GET", subPath(newRef("nope")), "", "", 404, CodeSubscriptionNotFound, "nope"},
		{"max too large", "POST", p + "/receive", `{"max":100000}`, "", 400, CodeInvalidMax, "1 to 1000"},
		{"max negative", "POST", p + "/receive", `{"max":-1}`, "", 400, CodeInvalidMax, "-1"},
		{"wait too long", "POST", p + "/receive", `{"waitMs":60000}`, "", 400, CodeInvalidWait, "30000"},
		{"consumer with newline", "POST", p + "/receive", `{"consumer":"w\n1"}`, "", 400, CodeInvalidConsumer, "printable"},
		{"consumer too long", "POST", p + "/receive", `{"consumer":"` + strings.Repeat("w", MaxConsumerNameBytes+1) + `"}`, "", 400, CodeInvalidConsumer, "128"},
		{"consumer padded ack", "POST", p + "/ack", `{"ackIds":["x"],"consumer":" w"}`, "", 400, CodeInvalidConsumer, "surrounding"},
		{"consumer non-ascii nack", "POST", p + "/nack", `{"ackIds":["x"],"consumer":"wörker"}`, "", 400, CodeInvalidConsumer, "ASCII"},
		{"no ack ids", "POST", p + "/ack", `{}`, "", 400, CodeInvalidAckIDs, "missing"},
		{"empty ack ids", "POST", p + "/ack", `{"ackIds":[]}`, "", 400, CodeInvalidAckIDs, "0 entries"},
		{"garbage ack id", "POST", p + "/ack", `{"ackIds":["not-a-token!"]}`, "", 400, CodeInvalidAckID, "ackIds[0]"},
		{"tampered ack id", "POST", p + "/ack", `{"ackIds":["` + string(tampered) + `"]}`, "", 400, CodeInvalidAckID, "not issued"},
		{"forged ack id", "POST", p + "/ack", `{"ackIds":["` + forged + `"]}`, "", 400, CodeInvalidAckID, "not issued"},
		{"other deployment's ack id", "POST", p + "/ack", `{"ackIds":["` + alien + `"]}`, "", 400, CodeInvalidAckID, "not issued"},
		{"foreign ack id", "POST", p + "/ack", `{"ackIds":["` + mine[1].AckID + `","` + foreign[0].AckID + `"]}`, "", 400, CodeAckIDForeign, "ackIds[1]"},
		{"foreign ack id nack", "POST", p + "/nack", `{"ackIds":["` + foreign[0].AckID + `"]}`, "", 400, CodeAckIDForeign, "another"},
		{"bad redeliver after", "POST", p + "/nack", `{"ackIds":["` + mine[0].AckID + `"],"redeliverAfter":"soon"}`, "", 400, CodeInvalidRedeliverAfter, "soon"},
		{"redeliver after too long", "POST", p + "/nack", `{"ackIds":["` + mine[0].AckID + `"],"redeliverAfter":"2h"}`, "", 400, CodeInvalidRedeliverAfter, "1h0m0s"},
		{"no app", "POST", p + "/receive", `{}`, "-", 401, CodeUnauthenticated, "Bearer"},
		{"forbidden receive", "POST", p + "/receive", `{}`, "nobody", 403, CodeForbidden, "nobody"},
		{"forbidden put", "PUT", p, `{}`, "nobody", 403, CodeForbidden, "may not consume"},
		{"forbidden ack", "POST", p + "/ack", `{"ackIds":["` + mine[0].AckID + `"]}`, "nobody", 403, CodeForbidden, "nobody"},
		{"forbidden subscription", "GET", subPath(SubscriptionRef{Tenant: "t", Namespace: "n", Topic: "x", Subscription: "private"}), "", "reader", 403, CodeForbidden, "private"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := c.app
			switch app {
			case "":
				app = "billing"
			case "-":
				app = ""
			}
			var body any
			if c.body != "" {
				body = c.body
			}
			code, eb := a.do(c.method, c.path, body, nil, app)
			require.Equal(t, c.status, code, "%+v", eb)
			require.Equal(t, c.code, eb.Code, eb.Message)
			require.Contains(t, eb.Message, c.msg)
		})
	}

	// The position of a filter error is also given as data.
	_, eb := a.do("PUT", p, `{"tagFilter":"PAY_1 || )"}`, nil)
	require.Equal(t, &Span{Start: 9, End: 10}, eb.Position)

	// Nothing above changed anything: the registration is the same, the
	// two messages are still leased (the rejected acks did nothing).
	got, err := a.svc.GetSubscription(context.Background(), ref)
	require.NoError(t, err)
	require.Equal(t, "PAY_1", got.TagFilter)
	require.EqualValues(t, 1, got.Version)
	require.Equal(t, AckResponse{Acked: 2}, a.ack(ref, mine...))

	// ackIds expire with the dedup window.
	clk.Advance(11 * time.Minute)
	code, eb := a.do("POST", p+"/ack", AckRequest{AckIDs: ackIDs(mine)}, nil)
	require.Equal(t, 400, code)
	require.Equal(t, CodeAckIDExpired, eb.Code)
	require.Contains(t, eb.Message, "delivered again")
	code, eb = a.do("POST", p+"/nack", NackRequest{AckIDs: ackIDs(mine)}, nil)
	require.Equal(t, 400, code)
	require.Equal(t, CodeAckIDExpired, eb.Code)
}

func isB64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// Without Redis nothing can be leased or recorded: the answer is 503
// STORE_UNAVAILABLE.
func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t)
	a := e.node(func(o *Options) {
		o.State.RedisTimeout = 500 * time.Millisecond
		o.State.ConfigRefresh = 50 * time.Millisecond
	})
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{})
	produce(t, e.client, ref.TopicName(), []testMsg{newMsg("A")})

	e.redis.Close()
	time.Sleep(100 * time.Millisecond) // past the registration cache
	code, eb := a.do("POST", subPath(ref)+"/receive", ReceiveRequest{Max: 10, WaitMs: 1000}, nil)
	require.Equal(t, http.StatusServiceUnavailable, code, "%+v", eb)
	require.Equal(t, CodeStoreUnavailable, eb.Code)
	code, eb = a.do("PUT", subPath(newRef("x")), SubscriptionSpec{}, nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, CodeStoreUnavailable, eb.Code)
}
