package app

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type retryReceived struct {
	AckID      string            `json:"ackId"`
	UID        string            `json:"uid"`
	Payload    *string           `json:"payload"`
	Properties map[string]string `json:"properties"`
	DeadLetter *struct {
		Reason        string `json:"reason"`
		OriginalTopic string `json:"originalTopic"`
	} `json:"deadLetter"`
}

// receiveOne long-polls sub until one message arrives (or fails the test).
func (h *harness) receiveOne(sub string, within time.Duration) retryReceived {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":1,"waitMs":500}`))
		require.Equal(h.t, http.StatusOK, r.Status, r.Raw)
		var page struct {
			Messages []retryReceived `json:"messages"`
		}
		require.NoError(h.t, json.Unmarshal([]byte(r.Raw), &page))
		if len(page.Messages) > 0 {
			return page.Messages[0]
		}
	}
	h.t.Fatalf("no message on %s within %s", sub, within)
	return retryReceived{}
}

type nackAnswer struct {
	Nacked       int `json:"nacked"`
	Ignored      int `json:"ignored"`
	Retried      int `json:"retried"`
	DeadLettered int `json:"deadLettered"`
}

func (h *harness) nackRetry(sub, ackID string) nackAnswer {
	h.t.Helper()
	r := h.do(http.MethodPost, sub+"/nack", jsonHeader(), []byte(`{"ackIds":["`+ackID+`"],"retry":true}`))
	require.Equal(h.t, http.StatusOK, r.Status, r.Raw)
	var a nackAnswer
	require.NoError(h.t, json.Unmarshal([]byte(r.Raw), &a))
	return a
}

// TestRetryPlanOverHTTP follows a retry plan end to end: a message produced
// with retryPlan "1s,2s" and nacked with retry comes back (same uid, same
// payload) no earlier than 1s, then no earlier than 2s, and the third nack
// with retry puts it in the subscription's dead-letter topic with the
// reason "retry plan exhausted".
func TestRetryPlanOverHTTP(t *testing.T) {
	h := start(t, nil)
	path, _ := newTopic(t)
	sub := h.register(path, "billing", `{"initialPosition":"earliest"}`)

	res := h.produceJSON(path, `{"messages":[{"payload":"order-42","key":"o42","properties":{"orderId":"42"},"retryPlan":"1s, 2s"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	uid := res.Results[0].UID

	m := h.receiveOne(sub, 15*time.Second)
	require.Equal(t, uid, m.UID)
	for step, wait := range []time.Duration{time.Second, 2 * time.Second} {
		nackedAt := time.Now()
		require.Equal(t, nackAnswer{Nacked: 1, Retried: 1}, h.nackRetry(sub, m.AckID), "retry %d", step+1)
		m = h.receiveOne(sub, wait+15*time.Second)
		got := time.Since(nackedAt)
		require.GreaterOrEqual(t, got, wait, "retry %d came back early", step+1)
		require.Equal(t, uid, m.UID, "the retried copy keeps its uid (and is not dropped as a duplicate)")
		require.NotNil(t, m.Payload)
		require.Equal(t, "order-42", *m.Payload)
		require.Equal(t, map[string]string{"orderId": "42"}, m.Properties, "psc-* properties stay hidden")
	}

	require.Equal(t, nackAnswer{Nacked: 1, DeadLettered: 1}, h.nackRetry(sub, m.AckID), "the plan is used up")
	dlqSub := h.register(path+"-billing-DLQ", "ops", `{"initialPosition":"earliest"}`) // the default <topic>-<sub>-DLQ
	dead := h.receiveOne(dlqSub, 15*time.Second)
	require.Equal(t, uid, dead.UID)
	require.NotNil(t, dead.DeadLetter)
	require.Equal(t, "retry plan exhausted", dead.DeadLetter.Reason)
	require.Equal(t, "persistent://"+path, dead.DeadLetter.OriginalTopic)

	// Nothing else comes back on the subscription.
	r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":10,"waitMs":1500}`))
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.JSONEq(t, `{"messages":[]}`, r.Raw)
}

// A nack with retry for a message without a plan is a plain nack: the
// message comes back at once.
func TestRetryWithoutPlanIsPlainNack(t *testing.T) {
	h := start(t, nil)
	path, _ := newTopic(t)
	sub := h.register(path, "billing", `{"initialPosition":"earliest"}`)
	res := h.produceJSON(path, `{"messages":[{"payload":"no-plan"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)

	m := h.receiveOne(sub, 15*time.Second)
	require.Equal(t, nackAnswer{Nacked: 1}, h.nackRetry(sub, m.AckID))
	again := h.receiveOne(sub, 15*time.Second)
	require.Equal(t, m.UID, again.UID)

	both := h.do(http.MethodPost, sub+"/nack", jsonHeader(), []byte(`{"ackIds":["`+again.AckID+`"],"retry":true,"redeliverAfter":"1s"}`))
	require.Equal(t, http.StatusBadRequest, both.Status, both.Raw)
	require.Equal(t, "INVALID_REDELIVER_AFTER", both.code())
}
