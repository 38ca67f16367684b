package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConsoleWhoami: each console app gets its configured role, an app
// without the console permission is refused, and so is no token.
func TestConsoleWhoami(t *testing.T) {
	h := startEmbedded(t, t.TempDir(), webApps)
	for _, tc := range []struct {
		token, app, role string
		status           int
	}{
		{token: webViewerToken, app: "support", role: "viewer", status: http.StatusOK},
		{token: webOperatorToken, app: "oncall", role: "operator", status: http.StatusOK},
		{token: webShopToken, status: http.StatusForbidden},
		{token: "", status: http.StatusUnauthorized},
	} {
		var hdr http.Header
		if tc.token != "" {
			hdr = bearer(tc.token)
		}
		r := h.do(http.MethodGet, "/console/v1/whoami", hdr, nil)
		require.Equal(t, tc.status, r.Status, r.Raw)
		if tc.status != http.StatusOK {
			continue
		}
		var who struct {
			App, Role string
			Open      bool
		}
		require.NoError(t, json.Unmarshal([]byte(r.Raw), &who))
		require.Equal(t, tc.app, who.App)
		require.Equal(t, tc.role, who.Role)
		require.False(t, who.Open)
	}
}

// TestConsoleCancelDelayed: DELETE /console/v1/delayed/{uid} needs the
// operator role; every refused attempt leaves the message scheduled; the
// operator's cancel removes it, records a cancelled trace event, and a
// second cancel is 404.
func TestConsoleCancelDelayed(t *testing.T) {
	h := startEmbedded(t, t.TempDir(), webApps)
	path, full := newTopic(t)
	d := h.do(http.MethodPost, "/v1/topics/"+path+"/messages", bearer(webShopToken),
		[]byte(`{"messages":[{"payload":"remind","key":"o-9","deliverAfter":"1h"}]}`))
	require.Equal(t, http.StatusOK, d.Status, d.Raw)
	uid := d.Results[0].UID

	// Listed for the topic, to a viewer.
	var list struct {
		Data []struct {
			UID, Topic, Key, Mode string
		}
		Note string
	}
	r := h.do(http.MethodGet, "/console/v1/delayed?topic="+path, bearer(webViewerToken), nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &list))
	require.Len(t, list.Data, 1, r.Raw)
	require.Equal(t, uid, list.Data[0].UID)
	require.Equal(t, full, list.Data[0].Topic)
	require.Equal(t, "wheel", list.Data[0].Mode)
	r = h.do(http.MethodGet, "/console/v1/delayed?key=o-9", bearer(webViewerToken), nil)
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
	require.Equal(t, "INVALID_PARAMETER", r.code())

	stillScheduled := func() {
		t.Helper()
		g := h.do(http.MethodGet, "/v1/delayed/"+uid, bearer(webShopToken), nil)
		require.Equal(t, http.StatusOK, g.Status, "a refused cancel changes nothing: %s", g.Raw)
	}
	for _, tc := range []struct {
		name, token, path string
		status            int
		code              string
	}{
		{name: "no token", path: uid, status: http.StatusUnauthorized, code: "UNAUTHENTICATED"},
		{name: "no console permission", token: webShopToken, path: uid, status: http.StatusForbidden, code: "FORBIDDEN"},
		{name: "viewer", token: webViewerToken, path: uid, status: http.StatusForbidden, code: "FORBIDDEN"},
		{name: "not a uid", token: webOperatorToken, path: strings.ToUpper(uid), status: http.StatusBadRequest, code: "INVALID_PARAMETER"},
		{name: "unknown uid", token: webOperatorToken, path: "00000000-0000-4000-8000-000000000000", status: http.StatusNotFound, code: "MESSAGE_NOT_FOUND"},
	} {
		var hdr http.Header
		if tc.token != "" {
			hdr = bearer(tc.token)
		}
		r := h.do(http.MethodDelete, "/console/v1/delayed/"+tc.path, hdr, nil)
		require.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Raw)
		require.Equal(t, tc.code, r.code(), tc.name)
		stillScheduled()
	}

	r = h.do(http.MethodDelete, "/console/v1/delayed/"+uid, bearer(webOperatorToken), nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.JSONEq(t, `{"uid":"`+uid+`","mode":"wheel","cancelled":true,"inFlight":false}`, r.Raw)
	g := h.do(http.MethodGet, "/v1/delayed/"+uid, bearer(webShopToken), nil)
	require.Equal(t, http.StatusNotFound, g.Status, g.Raw)
	r = h.do(http.MethodDelete, "/console/v1/delayed/"+uid, bearer(webOperatorToken), nil)
	require.Equal(t, http.StatusNotFound, r.Status, r.Raw)

	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+uid+"/timeline", bearer(webViewerToken), nil)
		return r.Status == http.StatusOK && strings.Contains(r.Raw, `"type":"cancelled"`)
	}, 10*time.Second, 50*time.Millisecond, "the cancel is in the trace")
}
