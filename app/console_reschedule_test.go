package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConsoleRescheduleDelayed: POST /console/v1/delayed/{uid}/reschedule
// needs the operator role; every refused attempt (no token, no console
// permission, viewer, malformed uid, unknown uid, bad body, a time in the
// past or beyond limits.maxDelay) leaves the due time as it was; the
// operator's reschedule moves the message (listed per topic with its new
// due time) and the trace names who moved it; a delay-level message
// answers 409 NOT_RESCHEDULABLE.
func TestConsoleRescheduleDelayed(t *testing.T) {
	h := startEmbedded(t, t.TempDir(), webApps)
	path, full := newTopic(t)
	d := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", bearer(webShopToken),
		[]byte(`{"messages":[{"payload":"remind","key":"o-9","deliverAfter":"1h"}]}`))
	require.Equal(t, http.StatusOK, d.Status, d.Raw)
	uid := d.Results[0].UID

	type listed struct {
		Data []struct {
			UID, Topic, Mode string
			Due              time.Time
		}
	}
	dueNow := func() time.Time {
		t.Helper()
		var l listed
		r := h.do(http.MethodGet, "/console/v1/delayed?topic="+path, bearer(webViewerToken), nil)
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		require.NoError(t, json.Unmarshal([]byte(r.Raw), &l))
		require.Len(t, l.Data, 1, r.Raw)
		require.Equal(t, uid, l.Data[0].UID)
		require.Equal(t, full, l.Data[0].Topic)
		return l.Data[0].Due
	}
	due0 := dueNow()

	to := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)
	good := `{"deliverAt":"` + to.Format(time.RFC3339) + `"}`
	for _, tc := range []struct {
		name, token, uid, body string
		status                 int
		code                   string
	}{
		{name: "no token", uid: uid, body: good, status: http.StatusUnauthorized, code: "UNAUTHENTICATED"},
		{name: "no console permission", token: webShopToken, uid: uid, body: good, status: http.StatusForbidden, code: "FORBIDDEN"},
		{name: "viewer", token: webViewerToken, uid: uid, body: good, status: http.StatusForbidden, code: "FORBIDDEN"},
		{name: "not a uid", token: webOperatorToken, uid: strings.ToUpper(uid), body: good, status: http.StatusBadRequest, code: "INVALID_PARAMETER"},
		{name: "unknown uid", token: webOperatorToken, uid: "00000000-0000-4000-8000-000000000000", body: good, status: http.StatusNotFound, code: "MESSAGE_NOT_FOUND"},
		{name: "bad body", token: webOperatorToken, uid: uid, body: `{"deliverAfter":"1h"}`, status: http.StatusBadRequest, code: "INVALID_PARAMETER"},
		{name: "not a time", token: webOperatorToken, uid: uid, body: `{"deliverAt":"soon"}`, status: http.StatusBadRequest, code: "INVALID_TIME"},
		{name: "past", token: webOperatorToken, uid: uid, body: `{"deliverAt":"` + time.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + `"}`, status: http.StatusBadRequest, code: "INVALID_TIME"},
		{name: "beyond maxDelay", token: webOperatorToken, uid: uid, body: `{"deliverAt":"` + time.Now().Add(31*24*time.Hour).UTC().Format(time.RFC3339) + `"}`, status: http.StatusBadRequest, code: "INVALID_TIME"},
	} {
		var hdr http.Header
		if tc.token != "" {
			hdr = bearer(tc.token)
		}
		r := h.do(http.MethodPost, "/console/v1/delayed/"+tc.uid+"/reschedule", hdr, []byte(tc.body))
		require.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Raw)
		require.Equal(t, tc.code, r.code(), tc.name)
		require.True(t, dueNow().Equal(due0), "%s: a refused reschedule changes nothing", tc.name)
	}

	r := h.do(http.MethodPost, "/console/v1/delayed/"+uid+"/reschedule", bearer(webOperatorToken), []byte(good))
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	var moved struct {
		UID, Mode, Topic string
		Due              time.Time
	}
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &moved))
	require.Equal(t, uid, moved.UID)
	require.Equal(t, "wheel", moved.Mode)
	require.True(t, moved.Due.Equal(to), "%s != %s", moved.Due, to)
	require.True(t, dueNow().Equal(to), "listed with the new due time")
	g := h.do(http.MethodGet, "/v1/delayed/"+uid, bearer(webShopToken), nil)
	require.Equal(t, http.StatusOK, g.Status, g.Raw)
	require.Contains(t, g.Raw, to.Format(time.RFC3339))

	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+uid+"/timeline", bearer(webViewerToken), nil)
		return r.Status == http.StatusOK && strings.Contains(r.Raw, `"rescheduledBy":"oncall"`) && strings.Contains(r.Raw, `"previousDeliverAt"`)
	}, 10*time.Second, 50*time.Millisecond, "the reschedule is in the trace")

	// A delay-level message waits in its level's topic: it cannot move.
	lv := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", bearer(webShopToken),
		[]byte(`{"messages":[{"payload":"level","delayLevel":"2s"}]}`))
	require.Equal(t, http.StatusOK, lv.Status, lv.Raw)
	r = h.do(http.MethodPost, "/console/v1/delayed/"+lv.Results[0].UID+"/reschedule", bearer(webOperatorToken), []byte(good))
	require.Equal(t, http.StatusConflict, r.Status, r.Raw)
	require.Equal(t, "NOT_RESCHEDULABLE", r.code())
}
