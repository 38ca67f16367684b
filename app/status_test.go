package app

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// withScheduleGrace shortens how long the console waits before it calls a
// delayed message the engine does not hold schedule_lost.
func withScheduleGrace(d time.Duration) Option { return func(a *App) { a.scheduleGrace = d } }

// consoleMessage is the part of a console message view the status tests read.
type consoleMessage struct {
	Status      string     `json:"status"`
	PersistedAt *time.Time `json:"persistedAt"`
	DeliverAt   *time.Time `json:"deliverAt"`
	DelayMode   string     `json:"delayMode"`
	MessageID   string     `json:"messageId"`
}

// waitStatus polls the console until uid's status is want.
func (h *harness) waitStatus(uid, want string) consoleMessage {
	h.t.Helper()
	var m consoleMessage
	var last string
	require.Eventually(h.t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+uid+"?content=false", nil, nil)
		last = r.Raw
		return r.Status == http.StatusOK && json.Unmarshal([]byte(r.Raw), &m) == nil && m.Status == want
	}, 20*time.Second, 50*time.Millisecond, "uid %s never %s; last answer %s", uid, want, last)
	return m
}

// TestStatusFollowsTheLifecycle: through HTTP, against the app as the binary
// builds it, a message's console status is scheduled until it fires (then
// persisted), cancelled, persisted, delivered, consumed, dead_lettered;
// a wheel message the engine lost is schedule_lost, not persisted.
func TestStatusFollowsTheLifecycle(t *testing.T) {
	h := startApp(t, nil, withScheduleGrace(time.Millisecond))
	path, _ := newTopic(t)
	sub := h.register(path, "workers", `{"tagFilter":"WORK","initialPosition":"earliest","maxDeliveries":1}`)

	res := h.produceJSON(path, `{"messages":[
		{"payload":"stays","tags":["OTHER"]},
		{"payload":"held","tags":["WORK"]},
		{"payload":"acked","tags":["WORK"]},
		{"payload":"nacked","tags":["WORK"]},
		{"payload":"waits","deliverAfter":"30m"},
		{"payload":"cancelled","deliverAfter":"30m"},
		{"payload":"lost","deliverAfter":"30m"},
		{"payload":"fires","deliverAfter":"1s"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	uid := map[string]string{}
	for i, name := range []string{"stays", "held", "acked", "nacked", "waits", "cancelled", "lost", "fires"} {
		uid[name] = res.Results[i].UID
	}

	// Delayed: waiting, cancelled, lost, fired.
	m := h.waitStatus(uid["waits"], "scheduled")
	require.Equal(t, "wheel", m.DelayMode)
	require.NotNil(t, m.DeliverAt)
	require.WithinDuration(t, time.Now().Add(30*time.Minute), *m.DeliverAt, time.Minute)
	require.Nil(t, m.PersistedAt, "a wheel message is not on a broker yet")

	del := h.do(http.MethodDelete, "/v1/delayed/"+uid["cancelled"], nil, nil)
	require.Equal(t, http.StatusOK, del.Status, del.Raw)
	h.waitStatus(uid["cancelled"], "cancelled")

	h.waitStatus(uid["lost"], "scheduled")
	rdb := redis.NewClient(&redis.Options{Addr: h.app.RedisAddr()})
	defer rdb.Close()
	// What a restart without Redis persistence does to the wheel's index.
	require.NoError(t, rdb.HDel(context.Background(), "psc:delay:uid", uid["lost"]).Err())
	h.waitStatus(uid["lost"], "schedule_lost")

	m = h.waitStatus(uid["fires"], "persisted")
	require.NotNil(t, m.PersistedAt, "fired: the broker holds it now")
	require.NotEmpty(t, m.MessageID)

	// Consumed over HTTP: one left unacknowledged, one acked, one nacked
	// into the dead-letter topic (maxDeliveries 1).
	h.waitStatus(uid["stays"], "persisted")
	byPayload := map[string]string{}
	deadline := time.Now().Add(15 * time.Second)
	for len(byPayload) < 3 && time.Now().Before(deadline) {
		r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":10,"waitMs":1000}`))
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		var page receiveAnswer
		require.NoError(t, json.Unmarshal([]byte(r.Raw), &page))
		for _, msg := range page.Messages {
			byPayload[*msg.Payload] = msg.AckID
		}
	}
	require.Len(t, byPayload, 3)
	h.waitStatus(uid["held"], "delivered")
	ack := h.do(http.MethodPost, sub+"/ack", jsonHeader(), []byte(`{"ackIds":["`+byPayload["acked"]+`"]}`))
	require.Equal(t, http.StatusOK, ack.Status, ack.Raw)
	h.waitStatus(uid["acked"], "consumed")
	nack := h.do(http.MethodPost, sub+"/nack", jsonHeader(), []byte(`{"ackIds":["`+byPayload["nacked"]+`"]}`))
	require.Equal(t, http.StatusOK, nack.Status, nack.Raw)
	require.Eventually(t, func() bool {
		// A receive lets the engine hand the nacked message on; with its
		// deliveries used up it goes to the dead-letter topic instead.
		r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":10,"waitMs":200}`))
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		require.NotContains(t, r.Raw, `"nacked"`, "delivered past maxDeliveries")
		v := h.do(http.MethodGet, "/console/v1/messages/"+uid["nacked"]+"?content=false", nil, nil)
		return strings.Contains(v.Raw, `"status":"dead_lettered"`)
	}, 20*time.Second, 100*time.Millisecond)
	h.waitStatus(uid["held"], "delivered")
	h.waitStatus(uid["stays"], "persisted")
	h.waitStatus(uid["waits"], "scheduled")
}
