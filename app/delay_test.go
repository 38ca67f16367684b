package app

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

// exclusive subscribes an Exclusive consumer from the earliest position:
// the subscription type Pulsar's native delivery does not hold back for.
func (h *harness) exclusive(full string) pulsar.Consumer {
	h.t.Helper()
	c, err := h.client.Subscribe(pulsar.ConsumerOptions{Topic: full, SubscriptionName: "excl", Type: pulsar.Exclusive,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	require.NoError(h.t, err)
	h.t.Cleanup(c.Close)
	return c
}

func receiveWithin(t *testing.T, c pulsar.Consumer, d time.Duration) (pulsar.Message, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.Receive(ctx)
}

// TestDelayedDeliveryToEverySubscriptionType: a delay level and the wheel
// both deliver to an Exclusive subscription (which Pulsar's native delay
// would not hold back), never before the due time, with uid, key, tags and
// properties intact.
func TestDelayedDeliveryToEverySubscriptionType(t *testing.T) {
	testDelayedDeliveryToEverySubscriptionType(t, start(t, nil))
}

func testDelayedDeliveryToEverySubscriptionType(t *testing.T, h *harness) {
	for _, tc := range []struct{ name, delayField string }{
		{"level", `"delayLevel":"1s"`},
		{"wheel", `"deliverAfter":"2s"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, full := newTopic(t)
			cons := h.exclusive(full)
			res := h.produceJSON(path, `{"messages":[{"payload":"timeout check","key":"order-7","tags":["ORDER_TIMEOUT"],
				"properties":{"orderId":"7"},`+tc.delayField+`}]}`)
			require.Equal(t, http.StatusOK, res.Status, res.Raw)
			r := res.Results[0]
			require.Equal(t, produce.StatusScheduled, r.Status)
			due, err := time.Parse(time.RFC3339Nano, r.DeliverAt)
			require.NoError(t, err, "deliverAt %q", r.DeliverAt)

			m, err := receiveWithin(t, cons, 10*time.Second)
			require.NoError(t, err)
			arrived := time.Now()
			require.False(t, arrived.Before(due), "delivered %s before its due time %s", due.Sub(arrived), due)
			require.Less(t, arrived.Sub(due), 3*time.Second, "delivered too late")
			require.Equal(t, "timeout check", string(m.Payload()))
			require.Equal(t, "order-7", m.Key())
			require.Equal(t, r.UID, m.Properties()[produce.PropUID])
			require.Equal(t, "ORDER_TIMEOUT", m.Properties()[produce.PropTags])
			require.Equal(t, "7", m.Properties()["orderId"])
			require.NoError(t, cons.Ack(m))
		})
	}
}

// TestDelayedCancelListReschedule drives the delay API over HTTP.
func TestDelayedCancelListReschedule(t *testing.T) { testDelayedCancelListReschedule(t, start(t, nil)) }

func testDelayedCancelListReschedule(t *testing.T, h *harness) {
	path, full := newTopic(t)
	cons := h.exclusive(full)

	res := h.produceJSON(path, `{"messages":[
		{"payload":"a","key":"order-9","deliverAfter":"3s"},
		{"payload":"b","key":"order-9","deliverAfter":"3s"},
		{"payload":"c","key":"order-10","deliverAfter":"30m"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	a, b, c := res.Results[0].UID, res.Results[1].UID, res.Results[2].UID

	got := h.do(http.MethodGet, "/v1/delayed/"+a, nil, nil)
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	var view struct {
		UID, Topic, Key, Due string
	}
	require.NoError(t, json.Unmarshal([]byte(got.Raw), &view))
	require.Equal(t, a, view.UID)
	require.Equal(t, full, view.Topic)
	require.Equal(t, "order-9", view.Key)

	list := h.do(http.MethodGet, "/v1/topics/"+path+"/delayed?key=order-9", nil, nil)
	require.Equal(t, http.StatusOK, list.Status, list.Raw)
	var listed struct {
		Messages []struct{ UID string } `json:"messages"`
	}
	require.NoError(t, json.Unmarshal([]byte(list.Raw), &listed))
	require.Len(t, listed.Messages, 2)

	// Cancel one by uid, move the 30-minute one to now+1s.
	del := h.do(http.MethodDelete, "/v1/delayed/"+a, nil, nil)
	require.Equal(t, http.StatusOK, del.Status, del.Raw)
	require.Contains(t, del.Raw, `"cancelled":true`)
	again := h.do(http.MethodGet, "/v1/delayed/"+a, nil, nil)
	require.Equal(t, http.StatusNotFound, again.Status)
	require.Equal(t, proxy.CodeDelayedNotFound, again.code())

	moved := h.do(http.MethodPut, "/v1/delayed/"+c, jsonHeader(), []byte(`{"deliverAfter":"1s"}`))
	require.Equal(t, http.StatusOK, moved.Status, moved.Raw)

	bad := h.do(http.MethodPut, "/v1/delayed/"+c, jsonHeader(), []byte(`{"deliverAfter":"1s","deliverAt":"2030-01-01T00:00:00Z"}`))
	require.Equal(t, http.StatusBadRequest, bad.Status)
	require.Equal(t, proxy.CodeInvalidDelay, bad.code())
	noKey := h.do(http.MethodGet, "/v1/topics/"+path+"/delayed", nil, nil)
	require.Equal(t, http.StatusBadRequest, noKey.Status)

	var payloads []string
	for range 2 {
		m, err := receiveWithin(t, cons, 10*time.Second)
		require.NoError(t, err)
		payloads = append(payloads, string(m.Payload()))
		require.NoError(t, cons.Ack(m))
	}
	require.ElementsMatch(t, []string{"b", "c"}, payloads, "the rescheduled message came early, the cancelled one never")
	_, err := receiveWithin(t, cons, 1500*time.Millisecond)
	require.Error(t, err, "the cancelled message must not be delivered")

	// Cancel by key leaves nothing of order-11.
	res = h.produceJSON(path, `{"messages":[{"payload":"d","key":"order-11","deliverAfter":"2s"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	ck := h.do(http.MethodDelete, "/v1/topics/"+path+"/delayed?key=order-11", nil, nil)
	require.Equal(t, http.StatusOK, ck.Status, ck.Raw)
	require.Contains(t, ck.Raw, res.Results[0].UID)
	_, err = receiveWithin(t, cons, 3500*time.Millisecond)
	require.Error(t, err, "a message cancelled by key must not be delivered")
	_ = b
}

// TestDelayedPermissions: an app sees and changes only delayed messages of
// topics it may produce to.
func TestDelayedPermissions(t *testing.T) {
	h := start(t, withApps) // billing may produce to pay/settle/*, ops only to ops/jobs/run
	path, _ := newTopic(t)
	res := h.produceJSON(path, `{"messages":[{"payload":"x","key":"k","deliverAfter":"10m"}]}`, "Authorization", "Bearer "+billingToken)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	uid := res.Results[0].UID

	other := http.Header{"Authorization": {"Bearer " + opsToken}}
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/v1/delayed/" + uid},
		{http.MethodDelete, "/v1/delayed/" + uid},
		{http.MethodGet, "/v1/topics/" + path + "/delayed?key=k"},
		{http.MethodDelete, "/v1/topics/" + path + "/delayed?key=k"},
	} {
		got := h.do(r.method, r.path, other, nil)
		require.Equal(t, http.StatusForbidden, got.Status, "%s %s: %s", r.method, r.path, got.Raw)
		require.Equal(t, proxy.CodeForbidden, got.code())
	}
	none := h.do(http.MethodGet, "/v1/delayed/"+uid, nil, nil)
	require.Equal(t, http.StatusUnauthorized, none.Status)
	mine := h.do(http.MethodGet, "/v1/delayed/"+uid, http.Header{"Authorization": {"Bearer " + billingToken}}, nil)
	require.Equal(t, http.StatusOK, mine.Status, mine.Raw)
}
