package app

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTraceAndConsole: a message produced over HTTP leaves accepted and
// persisted events in the real SQLite trace store (through the pipeline),
// and the console answers its timeline and, once a native consumer has
// acknowledged it, "consumed" (from the subscription cursor: no consume
// events are recorded for native consumers).
func TestTraceAndConsole(t *testing.T) {
	h := startApp(t, nil)
	path, full := newTopic(t)
	cons := h.subscribe(full)

	res := h.produceJSON(path, `{"messages":[{"payload":"charge 42","key":"o-42","tags":["PAY_1001"]}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	uid := res.Results[0].UID

	var view struct {
		UID      string `json:"uid"`
		Key      string `json:"key"`
		Timeline []struct {
			Type string `json:"type"`
		} `json:"timeline"`
		Content struct {
			Payload string `json:"payload"`
		} `json:"content"`
	}
	var last string
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+uid, nil, nil)
		last = r.Raw
		if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Raw), &view) != nil {
			return false
		}
		n := len(view.Timeline)
		return n >= 2 && view.Timeline[0].Type == "accepted" && view.Timeline[n-1].Type == "persisted"
	}, 10*time.Second, 50*time.Millisecond, "the timeline reaches the store through the pipeline; last answer %s", last)
	require.Equal(t, uid, view.UID)
	require.Equal(t, "o-42", view.Key)
	require.Equal(t, "charge 42", view.Content.Payload, "content comes from the broker")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := cons.Receive(ctx)
	require.NoError(t, err)
	require.NoError(t, cons.Ack(m))

	var consumption struct {
		Subscriptions []struct {
			Subscription string `json:"subscription"`
			State        string `json:"state"`
			Source       string `json:"source"`
		} `json:"subscriptions"`
	}
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+uid+"/consumption", nil, nil)
		last = r.Raw
		if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Raw), &consumption) != nil {
			return false
		}
		for _, s := range consumption.Subscriptions {
			if s.Subscription == "test" && s.State == "consumed" && s.Source == "cursor" {
				return true
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond, "the cursor says subscription test consumed it; last answer %s", last)

	unknown := h.do(http.MethodGet, "/console/v1/messages/no-such-uid", nil, nil)
	require.Equal(t, http.StatusNotFound, unknown.Status, unknown.Raw)
	require.Equal(t, "MESSAGE_NOT_FOUND", unknown.code())
}
