package app

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConsumptionNamesTheWorker: receive and ack take an optional consumer
// name; the delivered and acked events keep it with the client's address,
// and the console's consumption answer says which worker had the message.
// Without a name the app's name stands in.
func TestConsumptionNamesTheWorker(t *testing.T) {
	h := startApp(t, nil)
	path, _ := newTopic(t)
	sub := h.register(path, "workers", `{"initialPosition":"earliest"}`)
	res := h.produceJSON(path, `{"messages":[{"payload":"one"},{"payload":"two"},{"payload":"three"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)

	bad := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"consumer":"bad\u0007name"}`))
	require.Equal(t, http.StatusBadRequest, bad.Status, bad.Raw)
	require.Equal(t, "INVALID_CONSUMER", bad.code())

	got := map[string]string{} // payload -> ack id
	for i, worker := range []string{"host-1/php-fpm-42", "host-2/php-fpm-7", ""} {
		body := `{"max":1,"waitMs":5000}`
		if worker != "" {
			body = `{"max":1,"waitMs":5000,"consumer":"` + worker + `"}`
		}
		r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(body))
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		var page receiveAnswer
		require.NoError(t, json.Unmarshal([]byte(r.Raw), &page))
		require.Len(t, page.Messages, 1, "receive %d: %s", i, r.Raw)
		got[worker] = page.Messages[0].UID + " " + page.Messages[0].AckID
	}
	split := func(s string) (string, string) {
		var uid, ack string
		for i := range s {
			if s[i] == ' ' {
				uid, ack = s[:i], s[i+1:]
				break
			}
		}
		return uid, ack
	}
	uid1, ack1 := split(got["host-1/php-fpm-42"])
	uid2, _ := split(got["host-2/php-fpm-7"])
	uid3, ack3 := split(got[""])
	// host-1 acks under its own name; the third ack names no one.
	ack := h.do(http.MethodPost, sub+"/ack", jsonHeader(), []byte(`{"ackIds":["`+ack1+`"],"consumer":"host-1/php-fpm-42"}`))
	require.Equal(t, http.StatusOK, ack.Status, ack.Raw)
	ack = h.do(http.MethodPost, sub+"/ack", jsonHeader(), []byte(`{"ackIds":["`+ack3+`"]}`))
	require.Equal(t, http.StatusOK, ack.Status, ack.Raw)

	type state struct {
		Subscription string `json:"subscription"`
		State        string `json:"state"`
		Consumer     string `json:"consumer"`
		ClientIP     string `json:"clientIp"`
		App          string `json:"app"`
	}
	waitState := func(uid, want string) state {
		t.Helper()
		var st state
		var last string
		require.Eventually(t, func() bool {
			var v struct {
				Subscriptions []state `json:"subscriptions"`
			}
			r := h.do(http.MethodGet, "/console/v1/messages/"+uid+"/consumption", nil, nil)
			last = r.Raw
			if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Raw), &v) != nil || len(v.Subscriptions) != 1 {
				return false
			}
			st = v.Subscriptions[0]
			return st.State == want && st.Consumer != ""
		}, 15*time.Second, 50*time.Millisecond, "last answer %s", last)
		return st
	}
	st := waitState(uid1, "consumed")
	require.Equal(t, state{Subscription: "workers", State: "consumed", Consumer: "host-1/php-fpm-42", ClientIP: "127.0.0.1", App: "dev"}, st)
	st = waitState(uid2, "delivered_not_acked")
	require.Equal(t, state{Subscription: "workers", State: "delivered_not_acked", Consumer: "host-2/php-fpm-7", ClientIP: "127.0.0.1", App: "dev"}, st)
	st = waitState(uid3, "consumed")
	require.Equal(t, "dev", st.Consumer, "no name: the app stands in")

	// The timeline's delivered event names the worker too.
	var view struct {
		Timeline []struct {
			Type     string `json:"type"`
			Consumer string `json:"consumer"`
			ClientIP string `json:"clientIp"`
		} `json:"timeline"`
	}
	h.consoleJSON("/messages/"+uid2+"?content=false", http.StatusOK, &view)
	found := false
	for _, ev := range view.Timeline {
		if ev.Type == "delivered" {
			found = true
			require.Equal(t, "host-2/php-fpm-7", ev.Consumer)
			require.Equal(t, "127.0.0.1", ev.ClientIP)
		}
	}
	require.True(t, found, "a delivered event: %+v", view.Timeline)
}
