package app

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

const publicToken = "public-token"

// withPublicApp adds, to withApps' apps, "public": it may produce to and
// consume from public/*, which the sidecar's internal topics match.
func withPublicApp(c *config.Config) {
	withApps(c)
	c.Apps = append(c.Apps, config.App{Name: "public", TokenSHA256: proxy.HashToken(publicToken),
		Produce: []string{"public/*"}, Consume: []string{"public/*"}})
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
}

// redisKeys lists the sidecar's keys in its Redis matching pattern, sorted.
func (h *harness) redisKeys(pattern string) []string {
	h.t.Helper()
	keys, err := h.redis.Client().Keys(context.Background(), pattern).Result()
	require.NoError(h.t, err)
	slices.Sort(keys)
	return keys
}

// eventsOf counts the recorded events of type typ.
func (r *recorder) eventsOf(typ tracer.Type) []tracer.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []tracer.Event
	for _, ev := range r.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// byUID are the delay API's calls on one uid, each with the body it needs.
var byUID = []struct{ method, body string }{
	{http.MethodGet, ""},
	{http.MethodDelete, ""},
	{http.MethodPut, `{"deliverAfter":"1s"}`},
}

// TestDelayedOtherAppsUID: an app without produce permission on a
// message's topic can neither see, cancel nor move it, in any delay mode
// (issue 12: delayLevel messages were not checked, and another app's
// cancel meant the message was never delivered). Nothing is written, and
// the level message is still delivered on time.
func TestDelayedOtherAppsUID(t *testing.T) {
	h := start(t, func(c *config.Config) {
		withApps(c)
		c.Delay.Levels = "1s 3s"
	})
	path, full := newTopic(t) // billing's
	cons := h.exclusive(full)
	res := h.produceJSON(path, `{"messages":[{"payload":"level","key":"k","delayLevel":"3s"},
		{"payload":"wheel","key":"k","deliverAfter":"10m"}]}`, "Authorization", "Bearer "+billingToken)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	levelUID, wheelUID := res.Results[0].UID, res.Results[1].UID

	keys := h.redisKeys("psc:delay:*")
	require.Contains(t, keys, "psc:delay:ll:"+levelUID, "the level message's record")
	for _, uid := range []string{levelUID, wheelUID} {
		for _, r := range byUID {
			got := h.do(r.method, "/v1/delayed/"+uid, bearer(opsToken), []byte(r.body))
			require.Equal(t, http.StatusForbidden, got.Status, "%s %s: %s", r.method, uid, got.Raw)
			require.Equal(t, proxy.CodeForbidden, got.code())
		}
	}
	require.Equal(t, keys, h.redisKeys("psc:delay:*"), "a refused call writes nothing: no cancel mark, no record change")
	require.Empty(t, h.rec.eventsOf(tracer.Cancelled), "no cancelled event for a refused call")

	// The owner sees both, with their mode; a level message cannot move.
	for uid, want := range map[string]string{levelUID: "level", wheelUID: "wheel"} {
		got := h.do(http.MethodGet, "/v1/delayed/"+uid, bearer(billingToken), nil)
		require.Equal(t, http.StatusOK, got.Status, got.Raw)
		var view struct{ UID, Mode, Level, Topic, Key string }
		require.NoError(t, json.Unmarshal([]byte(got.Raw), &view))
		require.Equal(t, want, view.Mode)
		require.Equal(t, full, view.Topic)
		require.Equal(t, "k", view.Key)
	}
	moved := h.do(http.MethodPut, "/v1/delayed/"+levelUID, bearer(billingToken), []byte(`{"deliverAfter":"1s"}`))
	require.Equal(t, http.StatusConflict, moved.Status, moved.Raw)
	require.Equal(t, proxy.CodeDelayedLevel, moved.code())

	m, err := receiveWithin(t, cons, 15*time.Second)
	require.NoError(t, err, "the level message that another app tried to cancel is delivered")
	require.Equal(t, levelUID, m.Properties()[produce.PropUID])
	require.NoError(t, cons.Ack(m))
	require.Eventually(t, func() bool { return !slices.Contains(h.redisKeys("psc:delay:*"), "psc:delay:ll:"+levelUID) },
		5*time.Second, 20*time.Millisecond, "the forwarder deletes the record of what it forwarded")
	gone := h.do(http.MethodGet, "/v1/delayed/"+levelUID, bearer(billingToken), nil)
	require.Equal(t, http.StatusNotFound, gone.Status, gone.Raw)
	require.Equal(t, proxy.CodeDelayedNotFound, gone.code())

	// The owner cancels the wheel message.
	del := h.do(http.MethodDelete, "/v1/delayed/"+wheelUID, bearer(billingToken), nil)
	require.Equal(t, http.StatusOK, del.Status, del.Raw)
	require.JSONEq(t, `{"uid":"`+wheelUID+`","mode":"wheel","inFlight":false,"cancelled":true}`, del.Raw)
}

// TestDelayedLevelCancelByOwner: the owner's cancel of a level message
// stops it; a second cancel finds nothing.
func TestDelayedLevelCancelByOwner(t *testing.T) {
	h := start(t, func(c *config.Config) {
		withApps(c)
		c.Delay.Levels = "1s 2s"
	})
	path, full := newTopic(t)
	cons := h.exclusive(full)
	res := h.produceJSON(path, `{"messages":[{"payload":"cancel me","delayLevel":"2s"},{"payload":"keep","delayLevel":"2s"}]}`,
		"Authorization", "Bearer "+billingToken)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	uid := res.Results[0].UID
	del := h.do(http.MethodDelete, "/v1/delayed/"+uid, bearer(billingToken), nil)
	require.Equal(t, http.StatusOK, del.Status, del.Raw)
	require.JSONEq(t, `{"uid":"`+uid+`","mode":"level","inFlight":false,"cancelled":true}`, del.Raw)
	again := h.do(http.MethodDelete, "/v1/delayed/"+uid, bearer(billingToken), nil)
	require.Equal(t, http.StatusNotFound, again.Status, again.Raw)
	require.Equal(t, proxy.CodeDelayedNotFound, again.code())

	m, err := receiveWithin(t, cons, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, "keep", string(m.Payload()))
	require.NoError(t, cons.Ack(m))
	_, err = receiveWithin(t, cons, 1500*time.Millisecond)
	require.Error(t, err, "the cancelled level message is not delivered")
}

// TestDelayedMalformedAndUnknownUID: a uid that is not one is 400
// INVALID_UID, a well-formed uid nothing waits under is 404
// DELAYED_NOT_FOUND, for every call, and neither writes anything: no
// cancel mark, no cancelled event (which the console would then show for a
// message that never existed).
func TestDelayedMalformedAndUnknownUID(t *testing.T) {
	h := start(t, nil) // dev mode: every permission, so only the uid decides
	keys := h.redisKeys("*")
	for _, tc := range []struct{ name, uid, code string }{
		{"5000 characters", strings.Repeat("a", 5000), proxy.CodeInvalidUID},
		{"short", "12345", proxy.CodeInvalidUID},
		{"upper case", strings.ToUpper(produce.NewUID()), proxy.CodeInvalidUID},
		{"braces", "{" + produce.NewUID() + "}", proxy.CodeInvalidUID},
		{"not hex", strings.Repeat("g", 8) + produce.NewUID()[8:], proxy.CodeInvalidUID},
		{"unknown", produce.NewUID(), proxy.CodeDelayedNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range byUID {
				got := h.do(r.method, "/v1/delayed/"+tc.uid, jsonHeader(), []byte(r.body))
				want := http.StatusBadRequest
				if tc.code == proxy.CodeDelayedNotFound {
					want = http.StatusNotFound
				}
				require.Equal(t, want, got.Status, "%s: %s", r.method, got.Raw)
				require.Equal(t, tc.code, got.code(), got.Raw)
			}
		})
	}
	require.Equal(t, keys, h.redisKeys("*"), "nothing written to Redis")
	require.Empty(t, h.rec.eventsOf(tracer.Cancelled), "no cancelled event")
}

// TestDelayedNativeUID: a native-mode message (Pulsar's deliverAt) is not
// indexed, so by uid it is not found, for its app and for another alike,
// and nothing is written.
func TestDelayedNativeUID(t *testing.T) {
	h := start(t, func(c *config.Config) {
		withApps(c)
		c.Delay.Mode = "native"
	})
	path, _ := newTopic(t)
	res := h.produceJSON(path, `{"messages":[{"payload":"n","deliverAfter":"10m"}]}`, "Authorization", "Bearer "+billingToken)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	uid := res.Results[0].UID
	keys := h.redisKeys("*")
	for _, token := range []string{opsToken, billingToken} {
		for _, r := range byUID {
			got := h.do(r.method, "/v1/delayed/"+uid, bearer(token), []byte(r.body))
			require.Equal(t, http.StatusNotFound, got.Status, "%s: %s", r.method, got.Raw)
			require.Equal(t, proxy.CodeDelayedNotFound, got.code())
		}
	}
	require.Equal(t, keys, h.redisKeys("*"), "nothing written to Redis")
	require.Empty(t, h.rec.eventsOf(tracer.Cancelled))
}

// TestInternalTopics: an app whose pattern (public/*) matches the
// sidecar's own topics can neither produce to them (403 INTERNAL_TOPIC,
// nothing stored) nor subscribe to them (403 FORBIDDEN) nor cancel by key
// on them; its ordinary public topics still work.
func TestInternalTopics(t *testing.T) {
	h := start(t, withPublicApp)
	hdr := bearer(publicToken)
	internal := []string{"public/psc-delay/level-1s", "public/default/psc-health", "public/psc-x/t"}
	for _, p := range internal {
		res := h.do(http.MethodPost, "/v1/topics/"+p+"/messages", hdr,
			[]byte(`{"messages":[{"payload":"x","properties":{"psc-delay-topic-is-not-settable":"no"}}]}`))
		require.Equal(t, http.StatusForbidden, res.Status, "%s: %s", p, res.Raw)
		// A reserved property alone would be 400: the topic is checked first.
		res = h.do(http.MethodPost, "/v1/topics/"+p+"/messages", hdr, []byte(`{"messages":[{"payload":"x"}]}`))
		require.Equal(t, http.StatusForbidden, res.Status, "%s: %s", p, res.Raw)
		require.Equal(t, proxy.CodeInternalTopic, res.code(), res.Raw)

		sub := h.do(http.MethodPut, "/v1/topics/"+p+"/subscriptions/psc-delay-forwarder", hdr, []byte(`{}`))
		require.Equal(t, http.StatusForbidden, sub.Status, "%s: %s", p, sub.Raw)
		require.Equal(t, proxy.CodeForbidden, sub.code())
		recv := h.do(http.MethodPost, "/v1/topics/"+p+"/subscriptions/mine/receive", hdr, []byte(`{"max":1,"waitMs":0}`))
		require.Equal(t, http.StatusForbidden, recv.Status, "%s: %s", p, recv.Raw)

		byKey := h.do(http.MethodDelete, "/v1/topics/"+p+"/delayed?key=k", hdr, nil)
		require.Equal(t, http.StatusForbidden, byKey.Status, "%s: %s", p, byKey.Raw)
		require.Equal(t, proxy.CodeInternalTopic, byKey.code())
	}
	// Without permission the answer stays FORBIDDEN: permission comes first.
	res := h.produceJSON(internal[0], `{"messages":[{"payload":"x"}]}`, "Authorization", "Bearer "+billingToken)
	require.Equal(t, http.StatusForbidden, res.Status, res.Raw)
	require.Equal(t, proxy.CodeForbidden, res.code())

	// Nothing stored: no message of the app in any of them, no accepted
	// event, no cancel mark.
	for _, p := range internal {
		msgs, _ := h.broker.Messages("persistent://" + p) // a topic nobody created is an error: also nothing
		for _, m := range msgs {
			require.NotEqual(t, "public", m.Properties[produce.PropApp], "%s holds the app's message", p)
		}
	}
	require.Empty(t, h.rec.eventsOf(tracer.Accepted))
	require.Empty(t, h.redisKeys("psc:delay:lc:*"))

	// The same app's ordinary topic works, delayLevel included.
	ok := h.produceJSON("public/default/orders", `{"messages":[{"payload":"x","delayLevel":"1s"}]}`, "Authorization", "Bearer "+publicToken)
	require.Equal(t, http.StatusOK, ok.Status, ok.Raw)
}
