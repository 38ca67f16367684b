package app

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSearchByMessage: the console's search answers one row per message
// (topic, key, tags, app, status, times), paginated, with the events on
// demand, against the app's real trace store.
func TestSearchByMessage(t *testing.T) {
	h := startApp(t, nil)
	path, full := newTopic(t)
	res := h.produceJSON(path, `{"messages":[
		{"payload":"a","key":"order-1","tags":["PAY_1001"]},
		{"payload":"b","key":"order-2","tags":["PAY_1002"]},
		{"payload":"c","key":"order-3","tags":["PAY_1001"]},
		{"payload":"d","key":"order-4","deliverAfter":"30m"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	var uids []string
	for _, r := range res.Results {
		uids = append(uids, r.UID)
	}

	type row struct {
		UID          string    `json:"uid"`
		Topic        string    `json:"topic"`
		Key          string    `json:"key"`
		Tags         []string  `json:"tags"`
		App          string    `json:"app"`
		Status       string    `json:"status"`
		FirstEventAt time.Time `json:"firstEventAt"`
		LastEventAt  time.Time `json:"lastEventAt"`
		EventCount   int       `json:"eventCount"`
		Events       []struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"events"`
	}
	type page struct {
		Messages []row  `json:"messages"`
		Next     string `json:"next"`
	}
	q := url.Values{"view": {"messages"}, "topic": {full}, "limit": {"3"}}
	var first page
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/search?"+q.Encode(), nil, nil)
		first = page{}
		return r.Status == http.StatusOK && json.Unmarshal([]byte(r.Raw), &first) == nil &&
			len(first.Messages) == 3 && first.Messages[2].EventCount >= 2
	}, 15*time.Second, 50*time.Millisecond)
	require.NotEmpty(t, first.Next)
	q.Set("cursor", first.Next)
	var second page
	h.consoleJSON("/search?"+q.Encode(), http.StatusOK, &second)
	require.Empty(t, second.Next)
	rows := append(first.Messages, second.Messages...)
	require.Len(t, rows, 4)
	for i, r := range rows {
		require.Equal(t, uids[i], r.UID, "one row per message, in the order they were accepted")
		require.Equal(t, full, r.Topic)
		require.Equal(t, "dev", r.App)
		require.Empty(t, r.Events, "events only on demand")
		require.False(t, r.LastEventAt.Before(r.FirstEventAt))
	}
	require.Equal(t, "order-2", rows[1].Key)
	require.Equal(t, []string{"PAY_1002"}, rows[1].Tags)
	require.Equal(t, "persisted", rows[0].Status)
	require.Equal(t, "scheduled", rows[3].Status)

	// By tag and status, with events.
	var tagged page
	h.consoleJSON("/search?view=messages&events=true&tag=PAY_1001&status=persisted&topic="+url.QueryEscape(full), http.StatusOK, &tagged)
	require.Len(t, tagged.Messages, 2)
	require.Equal(t, []string{uids[0], uids[2]}, []string{tagged.Messages[0].UID, tagged.Messages[1].UID})
	for _, r := range tagged.Messages {
		require.Len(t, r.Events, r.EventCount)
		for _, ev := range r.Events {
			require.Equal(t, r.UID, ev.UID)
		}
	}
	var sched page
	h.consoleJSON("/search?view=messages&status=scheduled&topic="+url.QueryEscape(full), http.StatusOK, &sched)
	require.Len(t, sched.Messages, 1)
	require.Equal(t, uids[3], sched.Messages[0].UID)

	// Bad input: 400 with a stable code.
	for _, bad := range []struct{ query, code string }{
		{"view=messages&status=acked&topic=" + url.QueryEscape(full), "INVALID_PARAMETER"}, // an event type, not a status
		{"view=rows&topic=" + url.QueryEscape(full), "INVALID_PARAMETER"},
		{"view=messages&status=consumed", "MISSING_FILTER"},
		{"events=true&topic=" + url.QueryEscape(full), "INVALID_PARAMETER"},
		{"view=messages&limit=500&topic=" + url.QueryEscape(full), "INVALID_PARAMETER"},
		{"view=messages&tag=PAY_1001&cursor=" + url.QueryEscape(first.Next) + "&topic=" + url.QueryEscape(full), "INVALID_CURSOR"},
	} {
		r := h.do(http.MethodGet, "/console/v1/search?"+bad.query, nil, nil)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", bad.query, r.Raw)
		require.Equal(t, bad.code, r.code(), bad.query)
	}
}
