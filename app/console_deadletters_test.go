package app

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type deadLettersAnswer struct {
	Data []struct {
		MessageID, UID, Key, Reason, OriginalTopic, App string
		Deliveries                                      int
		Tags                                            []string
		Properties                                      map[string]string
	}
	More bool
}

type receivedMessage struct {
	AckID      string            `json:"ackId"`
	UID        string            `json:"uid"`
	Key        string            `json:"key"`
	Payload    string            `json:"payload"`
	Tags       []string          `json:"tags"`
	Properties map[string]string `json:"properties"`
}

// receiveAs long-polls a subscription with an app's token.
func (h *harness) receiveAs(sub, token string, waitMs int) []receivedMessage {
	h.t.Helper()
	r := h.do(http.MethodPost, sub+"/receive", bearer(token), []byte(`{"max":10,"waitMs":`+strconv.Itoa(waitMs)+`}`))
	require.Equal(h.t, http.StatusOK, r.Status, r.Raw)
	var got struct {
		Messages []receivedMessage `json:"messages"`
	}
	require.NoError(h.t, json.Unmarshal([]byte(r.Raw), &got))
	return got.Messages
}

// deadLetter produces one message on a fresh topic whose subscription
// "settlement" (maxDeliveries 1) dead-letters it after one nack, and
// returns the topic path, the subscription path and the message's uid
// once the console lists the dead letter.
func deadLetter(t *testing.T, h *harness) (path, full, sub, uid string) {
	t.Helper()
	path, full = newTopic(t)
	sub = "/v1/topics/" + path + "/subscriptions/settlement"
	reg := h.do(http.MethodPut, sub, bearer(webWorkerToken), []byte(`{"initialPosition":"earliest","maxDeliveries":1}`))
	require.Equal(t, http.StatusCreated, reg.Status, reg.Raw)
	res := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", bearer(webShopToken),
		[]byte(`{"messages":[{"payload":"charge o-77","key":"order-77","tags":["PAY_1001"],"properties":{"currency":"EUR"}}]}`))
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	uid = res.Results[0].UID
	msgs := h.receiveAs(sub, webWorkerToken, 5000)
	require.Len(t, msgs, 1)
	nack := h.do(http.MethodPost, sub+"/nack", bearer(webWorkerToken), []byte(`{"ackIds":["`+msgs[0].AckID+`"]}`))
	require.Equal(t, http.StatusOK, nack.Status, nack.Raw)
	// The next lease finds the delivery count used up: dead-letter it.
	require.Eventually(t, func() bool {
		require.Empty(t, h.receiveAs(sub, webWorkerToken, 200), "delivered once only (maxDeliveries 1)")
		var dl deadLettersAnswer
		r := h.do(http.MethodGet, "/console/v1/dead-letters/messages?topic="+path+"&subscription=settlement", bearer(webViewerToken), nil)
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		require.NoError(t, json.Unmarshal([]byte(r.Raw), &dl))
		return len(dl.Data) == 1
	}, 20*time.Second, 100*time.Millisecond, "the message is dead-lettered")
	return path, full, sub, uid
}

// TestConsoleResendDeadLetter: a dead letter is listed per subscription
// with its reason; a resend refused for every bad or unauthorized attempt
// changes nothing; the operator's resend puts it back with its uid, the
// subscription receives it exactly once, and the trace says who resent it.
func TestConsoleResendDeadLetter(t *testing.T) {
	h := startEmbedded(t, t.TempDir(), webApps)
	path, full, sub, uid := deadLetter(t, h)

	var topics struct {
		Data []struct{ Topic, Subscription, DeadLetterTopic string }
	}
	r := h.do(http.MethodGet, "/console/v1/dead-letters?topic="+path, bearer(webViewerToken), nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &topics))
	require.Len(t, topics.Data, 1)
	require.Equal(t, full+"-settlement-DLQ", topics.Data[0].DeadLetterTopic)

	var dl deadLettersAnswer
	r = h.do(http.MethodGet, "/console/v1/dead-letters/messages?topic="+path+"&subscription=settlement", bearer(webViewerToken), nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &dl))
	require.Len(t, dl.Data, 1)
	d := dl.Data[0]
	require.Equal(t, uid, d.UID)
	require.Equal(t, "order-77", d.Key)
	require.Equal(t, []string{"PAY_1001"}, d.Tags)
	require.Equal(t, "shop", d.App)
	require.Equal(t, full, d.OriginalTopic)
	require.Contains(t, d.Reason, "maxDeliveries 1")
	require.Equal(t, map[string]string{"currency": "EUR"}, d.Properties)
	require.False(t, dl.More)

	// Exported as JSON lines with the payload, to a viewer; not without a token.
	r = h.do(http.MethodGet, "/console/v1/dead-letters/export?topic="+path+"&subscription=settlement", bearer(webViewerToken), nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	lines := strings.Split(strings.TrimSpace(r.Raw), "\n")
	require.Len(t, lines, 1, r.Raw)
	var line struct{ UID, MessageID, Reason, Encoding, Payload string }
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &line))
	require.Equal(t, uid, line.UID)
	require.Equal(t, d.MessageID, line.MessageID)
	require.Equal(t, "utf-8", line.Encoding)
	require.Equal(t, "charge o-77", line.Payload)
	r = h.do(http.MethodGet, "/console/v1/dead-letters/export?topic="+path+"&subscription=settlement", nil, nil)
	require.Equal(t, http.StatusUnauthorized, r.Status, r.Raw)
	r = h.do(http.MethodGet, "/console/v1/dead-letters/export?topic="+path+"&subscription=nobody", bearer(webViewerToken), nil)
	require.Equal(t, http.StatusNotFound, r.Status, r.Raw)

	resend := "/console/v1/dead-letters/resend?topic=" + path + "&subscription=settlement"
	body := []byte(`{"messageIds":["` + d.MessageID + `","999:9:-1:-1"]}`)
	for _, tc := range []struct {
		name, token, path string
		body              []byte
		status            int
		code              string
	}{
		{name: "no token", path: resend, body: body, status: 401, code: "UNAUTHENTICATED"},
		{name: "no console permission", token: webShopToken, path: resend, body: body, status: 403, code: "FORBIDDEN"},
		{name: "viewer", token: webViewerToken, path: resend, body: body, status: 403, code: "FORBIDDEN"},
		{name: "no subscription", token: webOperatorToken, path: "/console/v1/dead-letters/resend?topic=" + path, body: body, status: 400, code: "INVALID_PARAMETER"},
		{name: "unknown subscription", token: webOperatorToken, path: "/console/v1/dead-letters/resend?topic=" + path + "&subscription=nobody", body: body, status: 404, code: "SUBSCRIPTION_NOT_FOUND"},
		{name: "bad topic", token: webOperatorToken, path: "/console/v1/dead-letters/resend?topic=a//b&subscription=settlement", body: body, status: 400, code: "INVALID_TOPIC"},
		{name: "not JSON", token: webOperatorToken, path: resend, body: []byte(`messageIds`), status: 400, code: "INVALID_PARAMETER"},
		{name: "no ids", token: webOperatorToken, path: resend, body: []byte(`{"messageIds":[]}`), status: 400, code: "INVALID_PARAMETER"},
		{name: "bad id", token: webOperatorToken, path: resend, body: []byte(`{"messageIds":["1:2"]}`), status: 400, code: "INVALID_MESSAGE_ID"},
		{name: "unknown field", token: webOperatorToken, path: resend, body: []byte(`{"messageIds":["` + d.MessageID + `"],"all":true}`), status: 400, code: "INVALID_PARAMETER"},
	} {
		hdr := jsonHeader()
		if tc.token != "" {
			hdr = bearer(tc.token)
		}
		r := h.do(http.MethodPost, tc.path, hdr, tc.body)
		require.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Raw)
		require.Equal(t, tc.code, r.code(), tc.name)
	}
	require.Empty(t, h.receiveAs(sub, webWorkerToken, 500), "a refused resend publishes nothing")

	r = h.do(http.MethodPost, resend, bearer(webOperatorToken), body)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	var out struct {
		Results []struct{ MessageID, UID, Status, NewMessageID, Error string }
	}
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &out))
	require.Len(t, out.Results, 2)
	require.Equal(t, "resent", out.Results[0].Status, r.Raw)
	require.Equal(t, uid, out.Results[0].UID)
	require.NotEmpty(t, out.Results[0].NewMessageID)
	require.Equal(t, "not_found", out.Results[1].Status)

	// Delivered once, with its original uid and content.
	got := h.receiveAs(sub, webWorkerToken, 5000)
	require.Len(t, got, 1)
	m := got[0]
	require.Equal(t, uid, m.UID)
	require.Equal(t, "order-77", m.Key)
	require.Equal(t, "charge o-77", m.Payload)
	require.Equal(t, []string{"PAY_1001"}, m.Tags)
	require.Equal(t, map[string]string{"currency": "EUR"}, m.Properties)
	ack := h.do(http.MethodPost, sub+"/ack", bearer(webWorkerToken), []byte(`{"ackIds":["`+m.AckID+`"]}`))
	require.Equal(t, http.StatusOK, ack.Status, ack.Raw)
	require.JSONEq(t, `{"acked":1,"ignored":0}`, ack.Raw)
	require.Empty(t, h.receiveAs(sub, webWorkerToken, 1500), "delivered once")

	// Resent again after the copy was acknowledged: published, but the
	// subscription is done with the uid (within its dedup window) and
	// drops the second copy, as any duplicate.
	r = h.do(http.MethodPost, resend, bearer(webOperatorToken), []byte(`{"messageIds":["`+d.MessageID+`"]}`))
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Contains(t, r.Raw, `"status":"resent"`)
	require.Empty(t, h.receiveAs(sub, webWorkerToken, 1500), "an acknowledged uid is not delivered again within the dedup window")

	// The trace names the resend; the console shows the copy consumed.
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+uid, bearer(webViewerToken), nil)
		return r.Status == http.StatusOK && strings.Contains(r.Raw, `"resentFrom":"`+d.MessageID+`"`) &&
			strings.Contains(r.Raw, `"resentBy":"oncall"`) && strings.Contains(r.Raw, `"messageId":"`+out.Results[0].NewMessageID+`"`)
	}, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+uid+"/consumption", bearer(webViewerToken), nil)
		return r.Status == http.StatusOK && strings.Contains(r.Raw, `"state":"consumed"`)
	}, 10*time.Second, 50*time.Millisecond)
}
