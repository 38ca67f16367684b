package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConsoleResetCursor: a consumer receives and acknowledges 10
// messages (one more stays in flight); every refused reset (no token, no
// console permission, viewer, bad or future time, bad topic, unknown
// subscription) changes nothing; the operator's reset to before the
// messages makes the subscription deliver all 10 again with their uids,
// the in-flight delivery's old ackId is ignored, and the trace has a
// cursor_reset event naming who reset it.
func TestConsoleResetCursor(t *testing.T) {
	h := startEmbedded(t, t.TempDir(), webApps)
	path, full := newTopic(t)
	sub := "/v1/topics/" + path + "/subscriptions/settlement"
	reg := h.do(http.MethodPut, sub, bearer(webWorkerToken), []byte(`{"initialPosition":"earliest"}`))
	require.Equal(t, http.StatusCreated, reg.Status, reg.Raw)
	before := time.Now().Add(-time.Second).UTC()

	var msgs []string
	for i := range 10 {
		msgs = append(msgs, fmt.Sprintf(`{"payload":"charge %d","key":"order-%d"}`, i, i))
	}
	res := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", bearer(webShopToken), []byte(`{"messages":[`+strings.Join(msgs, ",")+`]}`))
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	want := map[string]bool{}
	for _, r := range res.Results {
		want[r.UID] = true
	}
	require.Len(t, want, 10)

	// receiveAll collects n distinct messages (any order).
	receiveAll := func(n int) map[string]receivedMessage {
		t.Helper()
		got := map[string]receivedMessage{}
		deadline := time.Now().Add(20 * time.Second)
		for len(got) < n && time.Now().Before(deadline) {
			for _, m := range h.receiveAs(sub, webWorkerToken, 500) {
				_, dup := got[m.UID]
				require.False(t, dup, "uid %s delivered twice", m.UID)
				got[m.UID] = m
			}
		}
		require.Len(t, got, n)
		return got
	}
	first := receiveAll(10)
	var inflight receivedMessage
	var acks []string
	for uid, m := range first {
		require.True(t, want[uid])
		if inflight.UID == "" {
			inflight = m // left unacknowledged: in flight at the reset
			continue
		}
		acks = append(acks, `"`+m.AckID+`"`)
	}
	a := h.do(http.MethodPost, sub+"/ack", bearer(webWorkerToken), []byte(`{"ackIds":[`+strings.Join(acks, ",")+`]}`))
	require.Equal(t, http.StatusOK, a.Status, a.Raw)
	require.JSONEq(t, `{"acked":9,"ignored":0}`, a.Raw)

	reset := func(token, topic, subName, body string) response {
		var hdr http.Header
		if token != "" {
			hdr = bearer(token)
		}
		return h.do(http.MethodPost, "/console/v1/subscriptions/reset-cursor?topic="+topic+"&subscription="+subName, hdr, []byte(body))
	}
	good := `{"time":"` + before.Format(time.RFC3339Nano) + `"}`
	for _, tc := range []struct {
		name, token, topic, sub, body string
		status                        int
		code                          string
	}{
		{name: "no token", topic: path, sub: "settlement", body: good, status: http.StatusUnauthorized, code: "UNAUTHENTICATED"},
		{name: "no console permission", token: webShopToken, topic: path, sub: "settlement", body: good, status: http.StatusForbidden, code: "FORBIDDEN"},
		{name: "viewer", token: webViewerToken, topic: path, sub: "settlement", body: good, status: http.StatusForbidden, code: "FORBIDDEN"},
		{name: "not a time", token: webOperatorToken, topic: path, sub: "settlement", body: `{"time":"yesterday"}`, status: http.StatusBadRequest, code: "INVALID_TIME"},
		{name: "future", token: webOperatorToken, topic: path, sub: "settlement", body: `{"time":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`, status: http.StatusBadRequest, code: "INVALID_TIME"},
		{name: "bad body", token: webOperatorToken, topic: path, sub: "settlement", body: `{"at":"x"}`, status: http.StatusBadRequest, code: "INVALID_PARAMETER"},
		{name: "no subscription", token: webOperatorToken, topic: path, body: good, status: http.StatusBadRequest, code: "INVALID_PARAMETER"},
		{name: "bad topic", token: webOperatorToken, topic: "a/b/c/d", sub: "settlement", body: good, status: http.StatusBadRequest, code: "INVALID_TOPIC"},
		{name: "unknown subscription", token: webOperatorToken, topic: path, sub: "nobody", body: good, status: http.StatusNotFound, code: "SUBSCRIPTION_NOT_FOUND"},
	} {
		r := reset(tc.token, tc.topic, tc.sub, tc.body)
		require.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Raw)
		require.Equal(t, tc.code, r.code(), tc.name)
	}
	require.Empty(t, h.receiveAs(sub, webWorkerToken, 300), "a refused reset replays nothing")

	r := reset(webOperatorToken, path, "settlement", good)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	var ans struct {
		Topic, Subscription, OperationID string
		ResetTo                          time.Time
		ClearedStates                    int64
	}
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &ans))
	require.Equal(t, full, ans.Topic)
	require.Equal(t, "settlement", ans.Subscription)
	require.True(t, ans.ResetTo.Equal(before), ans.ResetTo)
	require.GreaterOrEqual(t, ans.ClearedStates, int64(10), "the acks and the lease were cleared")

	// The in-flight delivery's ackId was handed out before the reset: ignored.
	a = h.do(http.MethodPost, sub+"/ack", bearer(webWorkerToken), []byte(`{"ackIds":["`+inflight.AckID+`"]}`))
	require.Equal(t, http.StatusOK, a.Status, a.Raw)
	require.JSONEq(t, `{"acked":0,"ignored":1}`, a.Raw)

	again := receiveAll(10)
	acks = acks[:0]
	for uid, m := range again {
		require.True(t, want[uid], "replayed with its uid")
		require.Equal(t, first[uid].Key, m.Key)
		acks = append(acks, `"`+m.AckID+`"`)
	}
	a = h.do(http.MethodPost, sub+"/ack", bearer(webWorkerToken), []byte(`{"ackIds":[`+strings.Join(acks, ",")+`]}`))
	require.Equal(t, http.StatusOK, a.Status, a.Raw)
	require.JSONEq(t, `{"acked":10,"ignored":0}`, a.Raw)
	require.Empty(t, h.receiveAs(sub, webWorkerToken, 300), "each once")

	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+ans.OperationID+"/timeline", bearer(webViewerToken), nil)
		return r.Status == http.StatusOK && strings.Contains(r.Raw, `"type":"cursor_reset"`) && strings.Contains(r.Raw, `"resetBy":"oncall"`)
	}, 10*time.Second, 50*time.Millisecond, "the reset is in the trace")
	// Searches over the topic still answer within the OpenAPI contract
	// (the harness validates them): the reset's event among the messages'.
	for _, q := range []string{"topic=" + path, "topic=" + path + "&view=messages"} {
		r := h.do(http.MethodGet, "/console/v1/search?"+q, bearer(webViewerToken), nil)
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		require.Contains(t, r.Raw, ans.OperationID, q)
	}
}
