package app

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// consoleJSON GETs a console path, requires want, and decodes the answer
// into v.
func (h *harness) consoleJSON(path string, want int, v any) string {
	h.t.Helper()
	r := h.do(http.MethodGet, "/console/v1"+path, nil, nil)
	require.Equal(h.t, want, r.Status, "GET %s: %s", path, r.Raw)
	if v != nil {
		require.NoError(h.t, json.Unmarshal([]byte(r.Raw), v), r.Raw)
	}
	return r.Raw
}

// metricLines returns the /metrics lines of the series whose names start
// with one of prefixes, so a failed check shows what matters.
func (h *harness) metricLines(prefixes ...string) string {
	h.t.Helper()
	r := h.do(http.MethodGet, "/metrics", nil, nil)
	require.Equal(h.t, http.StatusOK, r.Status)
	var out []string
	for line := range strings.Lines(r.Raw) {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "")
}

// TestConsoleRegistryIsTheConsumeRegistry: a subscription registered
// through the consume API is in the console's registry (with its tag
// filter and expected consumers), its topic is a registered topic,
// stats/backlog without topic= covers it, and the consumption answer calls
// it expected. Tag-backlog of an unknown subscription is the consume API's
// 404. The backlog collector exports the registered subscription.
func TestConsoleRegistryIsTheConsumeRegistry(t *testing.T) {
	h := startApp(t, nil)
	path, full := newTopic(t)
	h.register(path, "billing-pay", `{"tagFilter":"PAY_1001 || PAY_1002","type":"key_shared","initialPosition":"earliest","expectedConsumers":["billing","ledger"]}`)
	res := h.produceJSON(path, `{"messages":[{"payload":"a","tags":["PAY_1001"]},{"payload":"b","tags":["PAY_2000"]}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)

	var subs struct {
		Subscriptions []struct {
			Topic             string   `json:"topic"`
			Name              string   `json:"name"`
			TagFilter         string   `json:"tagFilter"`
			Type              string   `json:"type"`
			ExpectedConsumers []string `json:"expectedConsumers"`
		} `json:"subscriptions"`
	}
	h.consoleJSON("/registry/subscriptions", http.StatusOK, &subs)
	require.Len(t, subs.Subscriptions, 1)
	s := subs.Subscriptions[0]
	require.Equal(t, full, s.Topic)
	require.Equal(t, "billing-pay", s.Name)
	require.Equal(t, "PAY_1001 || PAY_1002", s.TagFilter)
	require.Equal(t, "Key_Shared", s.Type)
	require.Equal(t, []string{"billing", "ledger"}, s.ExpectedConsumers)
	h.consoleJSON("/registry/subscriptions?topic="+full, http.StatusOK, &subs)
	require.Len(t, subs.Subscriptions, 1)
	h.consoleJSON("/registry/subscriptions?topic=persistent://other/ns/none", http.StatusOK, &subs)
	require.Empty(t, subs.Subscriptions)

	var topics struct {
		Topics []struct {
			Name string `json:"name"`
		} `json:"topics"`
	}
	h.consoleJSON("/registry/topics", http.StatusOK, &topics)
	require.Len(t, topics.Topics, 1)
	require.Equal(t, full, topics.Topics[0].Name)

	var backlog struct {
		Data []struct {
			Topic         string `json:"topic"`
			Subscriptions []struct {
				Name       string `json:"name"`
				MsgBacklog int64  `json:"msgBacklog"`
			} `json:"subscriptions"`
			MissingSubscriptions []string `json:"missingSubscriptions"`
		} `json:"data"`
		Note string `json:"note"`
	}
	raw := h.consoleJSON("/stats/backlog", http.StatusOK, &backlog)
	require.Len(t, backlog.Data, 1, raw)
	require.Equal(t, full, backlog.Data[0].Topic)
	require.Empty(t, backlog.Data[0].MissingSubscriptions, raw)
	i := slices.IndexFunc(backlog.Data[0].Subscriptions, func(s struct {
		Name       string `json:"name"`
		MsgBacklog int64  `json:"msgBacklog"`
	}) bool {
		return s.Name == "billing-pay"
	})
	require.GreaterOrEqual(t, i, 0, "the broker's stats show the registered subscription: %s", raw)
	require.EqualValues(t, 2, backlog.Data[0].Subscriptions[i].MsgBacklog, raw)

	var cons struct {
		Subscriptions []struct {
			Subscription      string   `json:"subscription"`
			Expected          bool     `json:"expected"`
			TagFilter         string   `json:"tagFilter"`
			ExpectedConsumers []string `json:"expectedConsumers"`
			State             string   `json:"state"`
		} `json:"subscriptions"`
	}
	uid := res.Results[1].UID // PAY_2000: the filter skips it
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+uid+"/consumption", nil, nil)
		return r.Status == http.StatusOK && json.Unmarshal([]byte(r.Raw), &cons) == nil
	}, 10*time.Second, 50*time.Millisecond, "the trace store has the message")
	require.Len(t, cons.Subscriptions, 1)
	c := cons.Subscriptions[0]
	require.Equal(t, "billing-pay", c.Subscription)
	require.True(t, c.Expected, "a subscription registered through the consume API is expected")
	require.Equal(t, "PAY_1001 || PAY_1002", c.TagFilter)
	require.Equal(t, []string{"billing", "ledger"}, c.ExpectedConsumers)
	require.Equal(t, "filtered", c.State, "the registered filter does not match PAY_2000")

	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	h.consoleJSON("/stats/tag-backlog?topic="+full+"&subscription=nobody", http.StatusNotFound, &e)
	require.Equal(t, "SUBSCRIPTION_NOT_FOUND", e.Error.Code)
	h.consoleJSON("/stats/tag-backlog?topic=non-persistent://"+path, http.StatusBadRequest, &e)
	require.Equal(t, "INVALID_TOPIC", e.Error.Code)

	metrics := h.metricLines("psc_subscription_")
	for _, series := range []string{
		`psc_subscription_backlog_messages{subscription="billing-pay",topic="` + full + `"} 2`,
		`psc_subscription_backlog_oldest_age_seconds{subscription="billing-pay",topic="` + full + `"}`,
		`psc_subscription_stats_up{topic="` + full + `"} 1`,
	} {
		require.Contains(t, metrics, series)
	}
}

// TestConsoleStatsFromComponents: stats/delay, stats/spool and
// stats/clusters answer from the running delay engine, spool and circuit
// breakers, not null with a note.
func TestConsoleStatsFromComponents(t *testing.T) {
	h := startApp(t, nil)
	path, _ := newTopic(t)
	res := h.produceJSON(path, `{"messages":[{"payload":"later","deliverAfter":"1h"},{"payload":"soon","deliverAfter":"30m"},{"payload":"level","delayLevel":"2s"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)

	var d struct {
		Data *struct {
			Pending   int64            `json:"pending"`
			ByLevel   map[string]int64 `json:"byLevel"`
			NextDueAt *time.Time       `json:"nextDueAt"`
		} `json:"data"`
		Note string `json:"note"`
	}
	raw := h.consoleJSON("/stats/delay", http.StatusOK, &d)
	require.NotNil(t, d.Data, raw)
	require.EqualValues(t, 2, d.Data.ByLevel["wheel"], raw)
	require.Contains(t, d.Data.ByLevel, "1s", raw)
	require.Contains(t, d.Data.ByLevel, "2s", raw)
	require.GreaterOrEqual(t, d.Data.Pending, int64(2), raw)
	require.NotNil(t, d.Data.NextDueAt, raw)
	// The level message is due in 2 s; the 30-minute wheel message after it.
	require.WithinDuration(t, time.Now().Add(30*time.Minute), *d.Data.NextDueAt, 30*time.Minute+time.Second, raw)

	var sp struct {
		Data *struct {
			Messages  int64      `json:"messages"`
			Oldest    *time.Time `json:"oldest"`
			Replaying bool       `json:"replaying"`
		} `json:"data"`
	}
	raw = h.consoleJSON("/stats/spool", http.StatusOK, &sp)
	require.NotNil(t, sp.Data, raw)
	require.Zero(t, sp.Data.Messages, raw)
	require.Nil(t, sp.Data.Oldest, raw)

	var cl struct {
		Data []struct {
			Name    string `json:"name"`
			Role    string `json:"role"`
			Healthy bool   `json:"healthy"`
			Breaker string `json:"breaker"`
		} `json:"data"`
	}
	raw = h.consoleJSON("/stats/clusters", http.StatusOK, &cl)
	require.Len(t, cl.Data, 1, raw)
	require.Equal(t, "primary", cl.Data[0].Role)
	require.Equal(t, "closed", cl.Data[0].Breaker)
	require.True(t, cl.Data[0].Healthy)
	require.False(t, strings.Contains(raw, "not wired in"), raw)
}

// TestErrorsCountedByCode: the consume API's and the console's error
// answers go through psc_http_errors_total with their code, as the produce
// API's do; the per-app produce results exist at zero before any failure.
func TestErrorsCountedByCode(t *testing.T) {
	h := startApp(t, nil)
	path, full := newTopic(t)
	metrics := h.metricLines("psc_http_errors_total", "psc_produce_", "psc_rate_limited_total")
	for _, series := range []string{
		`psc_produce_messages_total{status="failed"} 0`,
		`psc_produce_results_total{app="dev",status="failed"} 0`,
		`psc_produce_results_total{app="dev",status="persisted"} 0`,
		`psc_rate_limited_total{app="dev"} 0`,
	} {
		require.Contains(t, metrics, series)
	}
	require.NotContains(t, metrics, `psc_http_errors_total{code="SUBSCRIPTION_NOT_FOUND"}`)

	res := h.produceJSON(path, `{"messages":[{"payload":"a"}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	r := h.do(http.MethodPost, "/v1/topics/"+path+"/subscriptions/nobody/receive", jsonHeader(), []byte(`{"max":1}`))
	require.Equal(t, http.StatusNotFound, r.Status, r.Raw)
	require.Equal(t, "SUBSCRIPTION_NOT_FOUND", r.code())
	sub := h.register(path, "s1", `{}`)
	r = h.do(http.MethodPost, sub+"/ack", jsonHeader(), []byte(`{"ackIds":["forged"]}`))
	require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
	ackCode := r.code()
	h.consoleJSON("/messages/no-such-uid", http.StatusNotFound, nil)
	h.consoleJSON("/search?nope=1", http.StatusBadRequest, nil)
	h.consoleJSON("/stats/tag-backlog?topic="+full+"&subscription=nobody", http.StatusNotFound, nil)

	metrics = h.metricLines("psc_http_errors_total", "psc_produce_")
	for _, series := range []string{
		`psc_http_errors_total{code="SUBSCRIPTION_NOT_FOUND"} 2`, // consume receive, console tag-backlog
		`psc_http_errors_total{code="` + ackCode + `"} 1`,
		`psc_http_errors_total{code="MESSAGE_NOT_FOUND"} 1`,
		`psc_http_errors_total{code="INVALID_PARAMETER"} 1`,
		`psc_produce_results_total{app="dev",status="persisted"} 1`,
		`psc_produce_messages_total{status="persisted"} 1`,
	} {
		require.Contains(t, metrics, series)
	}
}
