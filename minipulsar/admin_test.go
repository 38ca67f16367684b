package minipulsar_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// --- helpers ---

func adminOf(t *testing.T, s *minipulsar.Server) pulsaradmin.Client {
	t.Helper()
	a, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: s.AdminURL()})
	require.NoError(t, err)
	return a
}

func clientOf(t *testing.T, url string) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, OperationTimeout: 10 * time.Second, ConnectionTimeout: 5 * time.Second,
		Logger: plog.DefaultNopLogger()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func tname(t *testing.T, name string) utils.TopicName {
	t.Helper()
	tn, err := utils.GetTopicName(name)
	require.NoError(t, err)
	return *tn
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// adminStatus is the HTTP status of a pulsaradmin error (0 when it is not one).
func adminStatus(err error) int {
	var re rest.Error
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

// producerOf makes a producer; batched producers gather messages until
// Flush (or batchSize messages).
func producerOf(t *testing.T, c pulsar.Client, topic string, batched bool, opts pulsar.ProducerOptions) pulsar.Producer {
	t.Helper()
	opts.Topic = topic
	opts.DisableBatching = !batched
	if batched {
		opts.BatchingMaxPublishDelay = time.Hour
		if opts.BatchingMaxMessages == 0 {
			opts.BatchingMaxMessages = 1000
		}
	}
	p, err := c.CreateProducer(opts)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// sendAll publishes messages asynchronously, flushes and returns their ids.
func sendAll(t *testing.T, p pulsar.Producer, msgs ...*pulsar.ProducerMessage) []pulsar.MessageID {
	t.Helper()
	ids := make([]pulsar.MessageID, len(msgs))
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Add(1)
		p.SendAsync(ctxOf(t), m, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			ids[i], errs[i] = id, err
			wg.Done()
		})
	}
	require.NoError(t, p.FlushWithCtx(ctxOf(t)))
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	return ids
}

func payloads(n int, prefix string) []*pulsar.ProducerMessage {
	out := make([]*pulsar.ProducerMessage, n)
	for i := range out {
		out[i] = &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("%s-%d", prefix, i))}
	}
	return out
}

func receiveN(t *testing.T, c pulsar.Consumer, n int) []pulsar.Message {
	t.Helper()
	out := make([]pulsar.Message, 0, n)
	for len(out) < n {
		m, err := c.Receive(ctxOf(t))
		require.NoError(t, err, "after %d of %d messages", len(out), n)
		out = append(out, m)
	}
	return out
}

func payloadStrings(msgs []*utils.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload)
	}
	return out
}

// eventually retries f until it passes (every 20 ms, up to 10 s), for state
// reached asynchronously (acks are grouped by the client every 100 ms).
func eventually(t *testing.T, f func(c *assertT)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := &assertT{}
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(assertAbort); !ok {
						panic(r)
					}
				}
			}()
			f(c)
		}()
		if !c.failed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached: %s", c.msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type assertT struct {
	failed bool
	msg    string
}

func (a *assertT) Errorf(format string, args ...any) {
	a.failed, a.msg = true, fmt.Sprintf(format, args...)
}

func (a *assertT) FailNow() { a.failed = true; panic(assertAbort{}) }

type assertAbort struct{}

// --- topics ---

func TestAdminTopics(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	topics := adm.Topics()

	np := tname(t, "plain")
	require.NoError(t, topics.Create(np, 0))
	require.Equal(t, http.StatusConflict, adminStatus(topics.Create(np, 0)), "creating twice conflicts")

	pt := tname(t, "persistent://public/default/parts")
	require.NoError(t, topics.Create(pt, 3))
	require.Equal(t, http.StatusConflict, adminStatus(topics.Create(pt, 3)))
	md, err := topics.GetMetadata(pt)
	require.NoError(t, err)
	require.Equal(t, 3, md.Partitions)
	md, err = topics.GetMetadata(np)
	require.NoError(t, err)
	require.Zero(t, md.Partitions, "a non-partitioned topic has 0 partitions")
	md, err = topics.GetMetadata(tname(t, "never-created"))
	require.NoError(t, err)
	require.Zero(t, md.Partitions, "an unknown topic has 0 partitions, as on Pulsar")

	require.NoError(t, topics.Update(pt, 5))
	md, err = topics.GetMetadata(pt)
	require.NoError(t, err)
	require.Equal(t, 5, md.Partitions)
	require.Equal(t, http.StatusConflict, adminStatus(topics.Update(pt, 4)), "partitions never shrink")
	require.Equal(t, http.StatusNotFound, adminStatus(topics.Update(np, 4)), "a non-partitioned topic cannot be updated")

	npp := tname(t, "non-persistent://public/default/volatile")
	require.NoError(t, topics.Create(npp, 0))

	ns, err := utils.GetNamespaceName("public/default")
	require.NoError(t, err)
	partitioned, nonPartitioned, err := topics.List(*ns)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"persistent://public/default/parts"}, partitioned)
	want := []string{"persistent://public/default/plain", "non-persistent://public/default/volatile"}
	for i := 0; i < 5; i++ {
		want = append(want, fmt.Sprintf("persistent://public/default/parts-partition-%d", i))
	}
	require.ElementsMatch(t, want, nonPartitioned, "partitions are listed with non-partitioned topics, as on Pulsar")
	nsTopics, err := adm.Namespaces().GetTopics("public/default")
	require.NoError(t, err)
	require.Contains(t, nsTopics, "persistent://public/default/plain")
	require.Equal(t, want[:1], filter(s.Topics(), "plain"))

	require.NoError(t, topics.Delete(np, false, true))
	require.Equal(t, http.StatusNotFound, adminStatus(topics.Delete(np, false, true)), "deleting twice")
	require.Equal(t, http.StatusNotFound, adminStatus(topics.Delete(np, true, false)), "not a partitioned topic")

	require.NoError(t, topics.Delete(pt, false, false))
	partitioned, nonPartitioned, err = topics.List(*ns)
	require.NoError(t, err)
	require.Empty(t, partitioned)
	require.Equal(t, []string{"non-persistent://public/default/volatile"}, nonPartitioned)
	md, err = topics.GetMetadata(pt)
	require.NoError(t, err)
	require.Zero(t, md.Partitions)

	// A topic in use is deleted only with force.
	c := clientOf(t, s.ServiceURL())
	busy := tname(t, "busy")
	producerOf(t, c, "busy", false, pulsar.ProducerOptions{})
	require.Equal(t, http.StatusPreconditionFailed, adminStatus(topics.Delete(busy, false, true)))
	require.NoError(t, topics.Delete(busy, true, true))
}

func filter(names []string, sub string) []string {
	var out []string
	for _, n := range names {
		if strings.Contains(n, sub) {
			out = append(out, n)
		}
	}
	return out
}

func TestAdminNamespaces(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	tenants, err := adm.Tenants().List()
	require.NoError(t, err)
	require.Contains(t, tenants, "public")
	require.NoError(t, adm.Namespaces().CreateNamespace("public/extra"))
	err = adm.Namespaces().CreateNamespace("public/extra")
	require.Equal(t, http.StatusConflict, adminStatus(err))
	nss, err := adm.Namespaces().GetNamespaces("public")
	require.NoError(t, err)
	require.Contains(t, nss, "public/default")
	require.Contains(t, nss, "public/extra")

	getDedup := func() bool {
		t.Helper()
		resp, err := http.Get(s.AdminURL() + "/admin/v2/namespaces/public/default/deduplication")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var on bool
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&on))
		return on
	}
	require.False(t, getDedup(), "off by default, as on Pulsar")
	require.NoError(t, adm.Namespaces().SetDeduplicationStatus("public/default", true))
	require.True(t, getDedup())
	require.NoError(t, adm.Topics().Create(tname(t, "dd"), 0))
	st, err := adm.Topics().GetStats(tname(t, "dd"))
	require.NoError(t, err)
	require.Equal(t, "Enabled", st.DeDuplicationStatus)
	require.NoError(t, adm.Namespaces().SetDeduplicationStatus("public/default", false))
	require.False(t, getDedup())

	// Deleting a namespace: refused while it holds topics, unless forced.
	require.NoError(t, adm.Namespaces().SetDeduplicationStatus("public/extra", true))
	require.NoError(t, adm.Topics().Create(tname(t, "persistent://public/extra/a"), 0))
	require.NoError(t, adm.Topics().Create(tname(t, "persistent://public/extra/b"), 2))
	require.Equal(t, http.StatusConflict, adminStatus(adm.Namespaces().DeleteNamespace("public/extra")))
	status, _ := rawCall(t, http.MethodDelete, s.AdminURL()+"/admin/v2/namespaces/public/extra?force=true", "")
	require.Equal(t, http.StatusNoContent, status)
	require.Empty(t, filter(s.Topics(), "public/extra"))
	nss, err = adm.Namespaces().GetNamespaces("public")
	require.NoError(t, err)
	require.NotContains(t, nss, "public/extra")
	require.Equal(t, http.StatusNotFound, adminStatus(adm.Namespaces().DeleteNamespace("public/extra")))
	require.NoError(t, adm.Namespaces().CreateNamespace("public/extra"))
	require.NoError(t, adm.Topics().Create(tname(t, "persistent://public/extra/c"), 0))
	st, err = adm.Topics().GetStats(tname(t, "persistent://public/extra/c"))
	require.NoError(t, err)
	require.Equal(t, "Disabled", st.DeDuplicationStatus, "a deleted namespace's settings go with it")
	require.NoError(t, adm.Topics().Delete(tname(t, "persistent://public/extra/c"), false, true))
	require.NoError(t, adm.Namespaces().DeleteNamespace("public/extra"))
}

func TestHTTPLookup(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	require.NoError(t, adm.Topics().Create(tname(t, "hparts"), 2))
	c := clientOf(t, s.AdminURL()) // http:// service URL: lookups over HTTP

	for _, topic := range []string{"hplain", "hparts"} {
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
		require.NoError(t, err)
		p := producerOf(t, c, topic, false, pulsar.ProducerOptions{})
		sendAll(t, p, payloads(4, topic)...)
		seen := map[string]bool{}
		for _, m := range receiveN(t, cons, 4) {
			seen[string(m.Payload())] = true
		}
		require.Len(t, seen, 4)
		cons.Close()
	}

	lk, err := adm.Topics().Lookup(tname(t, "hplain"))
	require.NoError(t, err)
	require.Equal(t, s.ServiceURL(), lk.BrokerURL)

	s.RefuseLookups(true)
	for _, path := range []string{"/lookup/v2/topic/persistent/public/default/hplain", "/admin/v2/persistent/public/default/hplain/partitions?checkAllowAutoCreation=true"} {
		status, reason := rawCall(t, http.MethodGet, s.AdminURL()+path, "")
		require.Equal(t, http.StatusServiceUnavailable, status, path)
		require.NotEmpty(t, reason)
	}
	md, err := adm.Topics().GetMetadata(tname(t, "hparts"))
	require.NoError(t, err, "admin metadata calls are not lookups")
	require.Equal(t, 2, md.Partitions)
	s.RefuseLookups(false)
	status, _ := rawCall(t, http.MethodGet, s.AdminURL()+"/lookup/v2/topic/persistent/public/default/hplain", "")
	require.Equal(t, http.StatusOK, status)
}

// rawCall makes a request and returns the status and, for an error, the
// reason of its JSON body (failing the test when an error is not JSON).
func rawCall(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode < 400 {
		return resp.StatusCode, ""
	}
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s: %s", method, url, b)
	var e struct {
		Reason string `json:"reason"`
	}
	require.NoError(t, json.Unmarshal(b, &e), "%s %s: %s", method, url, b)
	require.NotEmpty(t, e.Reason, "%s %s", method, url)
	if resp.StatusCode == http.StatusMethodNotAllowed {
		require.NotEmpty(t, resp.Header.Get("Allow"), "405 names the allowed methods")
	}
	return resp.StatusCode, e.Reason
}

func TestAdminErrors(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "t")
	require.NoError(t, adm.Subscriptions().Create(tn, "s", utils.Earliest))
	ids := sendAll(t, producerOf(t, c, "t", false, pulsar.ProducerOptions{}), payloads(1, "x")...)
	ledger := ids[0].LedgerID()
	base := s.AdminURL() + "/admin/v2/persistent/public/default"

	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/admin/v2/nope", "", 404},
		{"GET", "/nothing/at/all", "", 404},
		{"DELETE", "/t/stats", "", 405},
		{"PATCH", "/t", "", 405},
		{"GET", "/missing/stats", "", 404},
		{"GET", "/missing/internalStats", "", 404},
		{"GET", "/missing/subscriptions", "", 404},
		{"GET", "/missing/lastMessageId", "", 404},
		{"POST", "/t/subscription/s/skip/-1", "", 400},
		{"POST", "/t/subscription/s/skip/many", "", 400},
		{"POST", "/t/subscription/nosub/skip/1", "", 404},
		{"POST", "/missing/subscription/s/skip/1", "", 404},
		{"POST", "/t/subscription/nosub/skip_all", "", 404},
		{"POST", "/t/subscription/s/resetcursor", "{bad json", 400},
		{"POST", "/t/subscription/s/resetcursor", "", 400},
		{"POST", "/t/subscription/s/resetcursor", `{"ledgerId":1}`, 400},
		{"POST", "/t/subscription/s/resetcursor/yesterday", "", 400},
		{"POST", "/t/subscription/nosub/resetcursor/0", "", 404},
		{"PUT", "/t/subscription/s2", `{"ledgerId":"x","entryId":0}`, 400},
		{"PUT", "/t/subscription/s2?messageId=middle", "", 400},
		{"PUT", "/t/subscription/s", "", 409},
		{"DELETE", "/t/subscription/nosub", "", 404},
		{"GET", "/t/ledger/abc/entry/0", "", 400},
		{"GET", "/t/ledger/-1/entry/0", "", 400},
		{"GET", "/t/ledger/1/entry/-5", "", 400},
		{"GET", fmt.Sprintf("/t/ledger/%d/entry/0", ledger+1000), "", 404},
		{"GET", fmt.Sprintf("/t/ledger/%d/entry/99", ledger), "", 404},
		{"GET", "/t/subscription/s/position/0", "", 400},
		{"GET", "/t/subscription/s/position/x", "", 400},
		{"GET", "/t/subscription/s/position/99", "", 404},
		{"GET", "/t/subscription/nosub/position/1", "", 404},
		{"PUT", "/p/partitions", "0", 406},
		{"PUT", "/p/partitions", `{"partitions":-3}`, 406},
		{"PUT", "/p/partitions", "three", 400},
		{"PUT", "/p/partitions", "", 400},
		{"PUT", "/p/partitions", `{"partitions":`, 400},
		{"PUT", "/p-partition-1/partitions", "2", 412},
		{"PUT", "/t/partitions", "2", 409},
		{"PUT", "/t", "", 409},
		{"DELETE", "/missing", "", 404},
		{"DELETE", "/t/partitions", "", 404},
		{"POST", "/missing/partitions", "3", 404},
		{"GET", "/missing/partitioned-stats", "", 404},
		{"GET", "/t/messageid/notatime", "", 400},
		{"GET", "/t/messageid/99999999999999", "", 404},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			url := base + tc.path
			if strings.HasPrefix(tc.path, "/admin") || strings.HasPrefix(tc.path, "/nothing") {
				url = s.AdminURL() + tc.path
			}
			status, _ := rawCall(t, tc.method, url, tc.body)
			require.Equal(t, tc.want, status)
		})
	}
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/admin/v2/bogus/public/default/t/stats", "", 404},
		{"GET", "/admin/v2/bogus/public/default", "", 404},
		{"GET", "/lookup/v2/topic/bogus/public/default/t", "", 404},
		{"POST", "/admin/v2/namespaces/public/default/deduplication", "maybe", 400},
		{"GET", "/admin/v2/schemas/public/default/t/schema", "", 404},
		{"PUT", "/admin/v2/namespaces/public/default", "", 409},
		{"GET", "/admin/v2/namespaces/nosuchtenant", "", 404},
		{"GET", "/admin/v2/namespaces/public/default/topics?mode=SOME", "", 400},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, _ := rawCall(t, tc.method, s.AdminURL()+tc.path, tc.body)
			require.Equal(t, tc.want, status)
		})
	}

	// Nothing above changed the subscription.
	n, err := s.Backlog("t", "s")
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func TestAdminTopicDeduplication(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "dedup")
	require.NoError(t, adm.Topics().Create(tn, 0))
	policy := func(applied bool) string {
		t.Helper()
		resp, err := http.Get(fmt.Sprintf("%s/admin/v2/persistent/public/default/dedup/deduplicationEnabled?applied=%v", s.AdminURL(), applied))
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	require.Equal(t, "null", policy(false), "no topic policy yet")
	require.Equal(t, "false", policy(true))
	on, err := adm.Topics().GetDeduplicationStatus(tn)
	require.NoError(t, err)
	require.False(t, on)

	require.NoError(t, adm.Topics().SetDeduplicationStatus(tn, true))
	on, err = adm.Topics().GetDeduplicationStatus(tn)
	require.NoError(t, err)
	require.True(t, on)
	st, err := adm.Topics().GetStats(tn)
	require.NoError(t, err)
	require.Equal(t, "Enabled", st.DeDuplicationStatus)

	// In force: a re-sent sequence id is dropped.
	seq := func(i int64) *int64 { return &i }
	p := producerOf(t, c, "dedup", false, pulsar.ProducerOptions{Name: "dd"})
	for _, i := range []int64{0, 1, 1, 0, 2} {
		_, err := p.Send(ctxOf(t), &pulsar.ProducerMessage{Payload: []byte(strconv.FormatInt(i, 10)), SequenceID: seq(i)})
		require.NoError(t, err)
	}
	stored, err := s.Messages("dedup")
	require.NoError(t, err)
	require.Len(t, stored, 3)

	require.NoError(t, adm.Namespaces().SetDeduplicationStatus("public/default", true))
	require.NoError(t, adm.Topics().RemoveDeduplicationStatus(tn))
	require.Equal(t, "null", policy(false))
	require.Equal(t, "true", policy(true), "the namespace policy applies once the topic's is removed")

	status, _ := rawCall(t, http.MethodPost, s.AdminURL()+"/admin/v2/persistent/public/default/dedup/deduplicationEnabled", "yes")
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, http.StatusNotFound, adminStatus(adm.Topics().SetDeduplicationStatus(tname(t, "nope"), true)))
	_, err = adm.Topics().GetDeduplicationStatus(tname(t, "nope"))
	require.Equal(t, http.StatusNotFound, adminStatus(err))
}
