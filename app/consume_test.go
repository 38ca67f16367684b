package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
)

type receiveAnswer struct {
	Messages []struct {
		AckID   string   `json:"ackId"`
		UID     string   `json:"uid"`
		Payload *string  `json:"payload"`
		Tags    []string `json:"tags"`
	} `json:"messages"`
}

// TestConsumeOverHTTPWithTrace is the whole product in one flow: produce
// over HTTP with tags, register a subscription with a tag filter, receive
// only the matching messages over HTTP, ack them, and read from the
// console that the message was delivered and acknowledged, by whom, from
// the trace store (the real pipeline into SQLite).
func TestConsumeOverHTTPWithTrace(t *testing.T) { testConsumeOverHTTPWithTrace(t, startApp(t, nil)) }

func testConsumeOverHTTPWithTrace(t *testing.T, h *harness) {
	path, _ := newTopic(t)
	sub := h.register(path, "pay-1001", `{"tagFilter":"PAY_1001 || PAY_1002","initialPosition":"earliest"}`)
	bad := h.do(http.MethodPut, "/v1/topics/"+path+"/subscriptions/bad", jsonHeader(), []byte(`{"tagFilter":"PAY_1001 ||"}`))
	require.Equal(t, http.StatusBadRequest, bad.Status, bad.Raw)
	require.Equal(t, "INVALID_TAG_FILTER", bad.code())

	res := h.produceJSON(path, `{"messages":[
		{"payload":"a","tags":["PAY_1001"]},
		{"payload":"b","tags":["PAY_2000"]},
		{"payload":"c","tags":["PAY_1002","VIP"]}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)
	wantUID := res.Results[0].UID

	var got receiveAnswer
	var payloads []string
	deadline := time.Now().Add(15 * time.Second)
	for len(payloads) < 2 && time.Now().Before(deadline) {
		r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":10,"waitMs":1000}`))
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		var page receiveAnswer
		require.NoError(t, json.Unmarshal([]byte(r.Raw), &page))
		for _, m := range page.Messages {
			payloads = append(payloads, *m.Payload)
			got.Messages = append(got.Messages, m)
		}
	}
	require.ElementsMatch(t, []string{"a", "c"}, payloads, "only messages matching the filter")

	ackIDs := make([]string, 0, len(got.Messages))
	for _, m := range got.Messages {
		ackIDs = append(ackIDs, `"`+m.AckID+`"`)
	}
	ack := h.do(http.MethodPost, sub+"/ack", jsonHeader(), []byte(`{"ackIds":[`+strings.Join(ackIDs, ",")+`]}`))
	require.Equal(t, http.StatusOK, ack.Status, ack.Raw)
	forged := h.do(http.MethodPost, sub+"/ack", jsonHeader(), []byte(`{"ackIds":["not-an-ack-id"]}`))
	require.Equal(t, http.StatusBadRequest, forged.Status, forged.Raw)

	// The subscription's counts, flushed to Redis (one script call per
	// hash, so also on Redis Cluster, where this test runs too).
	var stats struct {
		Totals struct {
			Delivered, Filtered, Acked int
		} `json:"totals"`
	}
	var statsRaw string
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, sub+"/stats", nil, nil)
		statsRaw = r.Raw
		return r.Status == http.StatusOK && json.Unmarshal([]byte(r.Raw), &stats) == nil &&
			stats.Totals.Delivered == 2 && stats.Totals.Filtered == 1 && stats.Totals.Acked == 2
	}, 15*time.Second, 100*time.Millisecond, "2 delivered and acked, 1 filtered; last answer %s", statsRaw)

	var consumption struct {
		Subscriptions []struct {
			Subscription string `json:"subscription"`
			State        string `json:"state"`
			Source       string `json:"source"`
		} `json:"subscriptions"`
	}
	var last string
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/console/v1/messages/"+wantUID+"/consumption", nil, nil)
		last = r.Raw
		if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Raw), &consumption) != nil {
			return false
		}
		for _, s := range consumption.Subscriptions {
			if s.Subscription == "pay-1001" && s.State == "consumed" && s.Source == "trace" {
				return true
			}
		}
		return false
	}, 15*time.Second, 100*time.Millisecond, "the console shows the ack from the trace; last answer %s", last)

	var view struct {
		Timeline []struct {
			Type string `json:"type"`
		} `json:"timeline"`
	}
	r := h.do(http.MethodGet, "/console/v1/messages/"+wantUID, nil, nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &view))
	var types []string
	for _, e := range view.Timeline {
		types = append(types, e.Type)
	}
	require.Subset(t, types, []string{"accepted", "persisted", "delivered", "acked"}, "the full timeline: %v", types)
}

// The per-tag backlog over HTTP: the data plane's backlog endpoint and the
// console's tag-backlog stats, from the embedded broker's subscription.
func TestTagBacklogOverHTTP(t *testing.T) {
	h := startApp(t, nil)
	path, _ := newTopic(t)
	sub := h.register(path, "codes", `{"tagFilter":"PAY_1001 || PAY_1002","initialPosition":"earliest"}`)
	res := h.produceJSON(path, `{"messages":[
		{"payload":"a","tags":["PAY_1001"]},
		{"payload":"b","tags":["PAY_2000"]},
		{"payload":"c","tags":["PAY_1002","VIP"]},
		{"payload":"d","tags":["PAY_1001"]}]}`)
	require.Equal(t, http.StatusOK, res.Status, res.Raw)

	r := h.do(http.MethodGet, sub+"/backlog", nil, nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	var b struct {
		Exact   bool  `json:"exact"`
		Pending int64 `json:"pending"`
		Scanned struct {
			Messages    int64 `json:"messages"`
			NotMatching int64 `json:"notMatching"`
		} `json:"scanned"`
		Tags []struct {
			Tag     string `json:"tag"`
			Pending int64  `json:"pending"`
		} `json:"tags"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &b))
	require.True(t, b.Exact, r.Raw)
	require.EqualValues(t, 3, b.Pending, r.Raw)
	require.EqualValues(t, 4, b.Scanned.Messages, r.Raw)
	require.EqualValues(t, 1, b.Scanned.NotMatching, r.Raw)

	c := h.do(http.MethodGet, "/console/v1/stats/tag-backlog?topic=persistent://"+path, nil, nil)
	require.Equal(t, http.StatusOK, c.Status, c.Raw)
	var rows struct {
		Data []struct {
			Subscription string `json:"subscription"`
			Tag          string `json:"tag"`
			Messages     int64  `json:"messages"`
			Exact        bool   `json:"exact"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(c.Raw), &rows))
	got := map[string]int64{}
	for _, row := range rows.Data {
		require.Equal(t, "codes", row.Subscription)
		require.True(t, row.Exact)
		got[row.Tag] = row.Messages
	}
	require.Equal(t, map[string]int64{"PAY_1001": 2, "PAY_1002": 1, "VIP": 1}, got, c.Raw)
}

// consume.backlogScanMessages reaches the scan: with a limit below the
// backlog the answer is a marked sample, not an exact count.
func TestTagBacklogScanLimitFromConfig(t *testing.T) {
	h := startApp(t, func(c *config.Config) { c.Consume.BacklogScanMessages = 2 })
	path, _ := newTopic(t)
	sub := h.register(path, "codes", `{"tagFilter":"PAY_1001","initialPosition":"earliest"}`)
	for range 5 { // one request each: one broker entry each
		res := h.produceJSON(path, `{"messages":[{"payload":"a","tags":["PAY_1001"]}]}`)
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
	}
	r := h.do(http.MethodGet, sub+"/backlog", nil, nil)
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	var b struct {
		Exact     bool   `json:"exact"`
		StoppedBy string `json:"stoppedBy"`
		Scanned   struct {
			Messages int64 `json:"messages"`
		} `json:"scanned"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Raw), &b))
	require.False(t, b.Exact, r.Raw)
	require.Equal(t, "messages", b.StoppedBy, r.Raw)
	require.Less(t, b.Scanned.Messages, int64(5), r.Raw)
}

// TestConsumeThroughTopicUnloads: a topic unloaded again and again (Pulsar
// moves bundles between brokers this way) while the sidecar produces to it
// and serves an HTTP subscription on it. Every message is received, and
// the sidecar's consumers are on connections of their own: with one
// shared client, a produce SEND crossing CLOSE_PRODUCER makes the broker
// close the connection, and pulsar-client-go v0.19 then re-subscribes the
// consumer twice and strands its receive queue (ADR 060).
func TestConsumeThroughTopicUnloads(t *testing.T) {
	h := startApp(t, nil)
	path, full := newTopic(t)
	sub := h.register(path, "billing", `{"initialPosition":"earliest"}`)

	want := map[string]bool{}
	seen := map[string]int{}
	receiveAll := func() {
		deadline := time.Now().Add(20 * time.Second)
		for len(seen) < len(want) && time.Now().Before(deadline) {
			r := h.do(http.MethodPost, sub+"/receive", jsonHeader(), []byte(`{"max":50,"waitMs":500}`))
			require.Equal(t, http.StatusOK, r.Status, r.Raw)
			var page receiveAnswer
			require.NoError(t, json.Unmarshal([]byte(r.Raw), &page))
			var ackIDs []string
			for _, m := range page.Messages {
				seen[*m.Payload]++
				ackIDs = append(ackIDs, `"`+m.AckID+`"`)
			}
			if len(ackIDs) > 0 {
				ack := h.do(http.MethodPost, sub+"/ack", jsonHeader(), []byte(`{"ackIds":[`+strings.Join(ackIDs, ",")+`]}`))
				require.Equal(t, http.StatusOK, ack.Status, ack.Raw)
			}
		}
		for p := range want {
			require.NotZero(t, seen[p], "%s never received; received %d of %d", p, len(seen), len(want))
		}
	}

	n := 0
	for round := range 5 {
		require.NoError(t, h.broker.UnloadTopic(full))
		// Produce straight after the unload, so sends cross CLOSE_PRODUCER.
		for range 10 {
			p := fmt.Sprintf("m%03d", n)
			n++
			want[p] = true
			res := h.produceJSON(path, `{"messages":[{"payload":"`+p+`"}]}`)
			require.Equal(t, http.StatusOK, res.Status, "round %d: %s", round, res.Raw)
		}
		receiveAll()
	}
	require.Len(t, seen, n)

	// Where the broker sees the sidecar's producer and consumers.
	res, err := http.Get(h.broker.AdminURL() + "/admin/v2/persistent/" + path + "/stats")
	require.NoError(t, err)
	defer res.Body.Close()
	var stats struct {
		Publishers []struct {
			Address string `json:"address"`
		} `json:"publishers"`
		Subscriptions map[string]struct {
			Consumers []struct {
				Address string `json:"address"`
			} `json:"consumers"`
		} `json:"subscriptions"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&stats))
	require.NotEmpty(t, stats.Publishers)
	consumers := 0
	for name, s := range stats.Subscriptions {
		for _, c := range s.Consumers {
			consumers++
			for _, p := range stats.Publishers {
				require.NotEqual(t, p.Address, c.Address, "subscription %s: a consumer shares the producer's connection", name)
			}
		}
	}
	require.NotZero(t, consumers)
}
