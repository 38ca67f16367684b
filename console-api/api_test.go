package consoleapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// searchFixture writes the events of five messages and returns them by uid.
func searchFixture(e *env) map[string][]tracer.Event {
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	type msg struct {
		uid, topic, key, app string
		tags                 []string
		steps                []tracer.Type
	}
	msgs := []msg{
		{"s1", ordersTopic, "order-1", "checkout", []string{"PAY_1001", "VIP"}, []tracer.Type{tracer.Accepted, tracer.Persisted, tracer.Delivered, tracer.Acked}},
		{"s2", ordersTopic, "order-2", "checkout", []string{"PAY_1002"}, []tracer.Type{tracer.Accepted, tracer.Persisted, tracer.Filtered}},
		{"s3", ordersTopic, "order-1", "mobile", []string{"PAY_1001"}, []tracer.Type{tracer.Accepted, tracer.Retried, tracer.Persisted}},
		{"s4", "persistent://billing/pay/refunds", "order-1", "refunds", nil, []tracer.Type{tracer.Accepted, tracer.Spooled}},
		{"s5", ordersTopic, "order-5", "checkout", []string{"PAY_1001"}, []tracer.Type{tracer.Accepted, tracer.Persisted, tracer.Delivered, tracer.DeadLettered}},
	}
	out := map[string][]tracer.Event{}
	var all []tracer.Event
	for i, m := range msgs {
		for j, typ := range m.steps {
			ev := tracer.Event{Type: typ, UID: m.uid, Topic: m.topic, Key: m.key, App: m.app, Tags: m.tags,
				Time: base.Add(time.Duration(i)*time.Minute + time.Duration(j)*time.Second)}
			if typ == tracer.Delivered || typ == tracer.Acked || typ == tracer.Filtered || typ == tracer.DeadLettered {
				ev.Subscription, ev.App = "settlement", "settle"
			}
			ev.ID = tracer.ComputeID(&ev)
			out[m.uid] = append(out[m.uid], ev)
			all = append(all, ev)
		}
	}
	e.record(all...)
	return out
}

// searchAll follows next cursors to the end and returns the event ids.
func searchAll(e *env, query string, limit int) []string {
	e.t.Helper()
	var ids []string
	path := "/search?" + query + fmt.Sprintf("&limit=%d", limit)
	for i := 0; ; i++ {
		require.Less(e.t, i, 100)
		var p pageJSON
		e.mustGet(path, &p)
		require.LessOrEqual(e.t, len(p.Events), limit)
		for _, ev := range p.Events {
			ids = append(ids, ev.ID)
		}
		if p.Next == "" {
			return ids
		}
		path = "/search?" + query + fmt.Sprintf("&limit=%d&cursor=%s", limit, p.Next)
	}
}

func idsOf(evs ...[]tracer.Event) []string {
	var out []string
	for _, list := range evs {
		for _, ev := range list {
			out = append(out, ev.ID)
		}
	}
	return out
}

func pick(evs []tracer.Event, types ...tracer.Type) []tracer.Event {
	var out []tracer.Event
	for _, ev := range evs {
		if slices.Contains(types, ev.Type) {
			out = append(out, ev)
		}
	}
	return out
}

func TestSearch(t *testing.T) {
	e := newEnv(t)
	m := searchFixture(e)
	cases := []struct {
		name, query string
		want        []string
	}{
		{"key", "key=order-1", idsOf(m["s1"], m["s3"], m["s4"])},
		{"key and topic", "key=order-1&topic=billing/pay/orders", idsOf(m["s1"], m["s3"])},
		{"tag", "tag=VIP", idsOf(m["s1"])},
		{"tag across messages", "tag=PAY_1001", idsOf(m["s1"], m["s3"], m["s5"])},
		{"app", "app=mobile", idsOf(m["s3"])},
		{"status", "status=acked", idsOf(pick(m["s1"], tracer.Acked))},
		{"statuses comma", "status=filtered,dead_lettered", idsOf(pick(m["s2"], tracer.Filtered), pick(m["s5"], tracer.DeadLettered))},
		{"statuses repeated", "status=filtered&status=dead_lettered", idsOf(pick(m["s2"], tracer.Filtered), pick(m["s5"], tracer.DeadLettered))},
		{"failures of an app", "app=checkout&status=retried,spooled,dead_lettered", nil},
		{"topic and time range", "topic=persistent://billing/pay/orders&from=2026-03-01T10:01:00Z&to=2026-03-01T10:02:01Z",
			idsOf(m["s2"], m["s3"][:1])}, // to is exclusive
		{"time range in ms", fmt.Sprintf("from=%d&to=%d", time.Date(2026, 3, 1, 10, 3, 0, 0, time.UTC).UnixMilli(),
			time.Date(2026, 3, 1, 10, 3, 1, 0, time.UTC).UnixMilli()), idsOf(m["s4"][:1])},
		{"subscription", "subscription=settlement&tag=PAY_1001", idsOf(pick(m["s1"], tracer.Delivered, tracer.Acked),
			pick(m["s5"], tracer.Delivered, tracer.DeadLettered))},
		{"uid", "uid=s2", idsOf(m["s2"])},
		{"nothing matches", "tag=PAY_9999", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, limit := range []int{1, 2, 100} {
				got := searchAll(e, tc.query, limit)
				require.Equal(t, tc.want, got, "limit %d", limit)
			}
		})
	}

	t.Run("a cursor is bound to its query", func(t *testing.T) {
		var p pageJSON
		e.mustGet("/search?key=order-1&limit=2", &p)
		require.NotEmpty(t, p.Next)
		status, code := e.get("/search?key=order-5&limit=2&cursor="+p.Next, nil)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, consoleapi.CodeInvalidCursor, code)
		// The page size may change between pages; the criteria may not.
		e.mustGet("/search?key=order-1&limit=50&cursor="+p.Next, &p)
		require.Len(t, p.Events, 9-2)
	})
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	searchFixture(e)
	// Two messages on two topics share a broker message id.
	e.record(
		tracer.Event{Type: tracer.Persisted, UID: "dup-a", MessageID: "7:7:0:0", Topic: ordersTopic, Time: time.Now()},
		tracer.Event{Type: tracer.Persisted, UID: "dup-b", MessageID: "7:7:0:0", Topic: "persistent://billing/pay/refunds", Time: time.Now()},
	)
	var first pageJSON
	e.mustGet("/search?key=order-1&limit=1", &first)
	forged := strings.SplitN(first.Next, ".", 2)[0] + ".bm90LWEtY3Vyc29y"

	cases := []struct {
		name, path string
		status     int
		code       string
	}{
		{"search without criteria", "/search", 400, consoleapi.CodeMissingFilter},
		{"search with only a limit", "/search?limit=5", 400, consoleapi.CodeMissingFilter},
		{"from not a time", "/search?from=yesterday", 400, consoleapi.CodeInvalidTimeRange},
		{"to not a time", "/search?tag=x&to=2026-13-01T00:00:00Z", 400, consoleapi.CodeInvalidTimeRange},
		{"from after to", "/search?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", 400, consoleapi.CodeInvalidTimeRange},
		{"empty range", "/search?from=2026-03-01T00:00:00Z&to=2026-03-01T00:00:00Z", 400, consoleapi.CodeInvalidTimeRange},
		{"ms too large", "/search?from=99999999999999999", 400, consoleapi.CodeInvalidTimeRange},
		{"garbage cursor", "/search?tag=x&cursor=%25%25%25", 400, consoleapi.CodeInvalidCursor},
		{"cursor of another query", "/search?key=order-5&limit=1&cursor=" + first.Next, 400, consoleapi.CodeInvalidCursor},
		{"forged store cursor", "/search?key=order-1&limit=1&cursor=" + forged, 400, consoleapi.CodeInvalidCursor},
		{"limit zero", "/search?tag=x&limit=0", 400, consoleapi.CodeInvalidParameter},
		{"limit not a number", "/search?tag=x&limit=ten", 400, consoleapi.CodeInvalidParameter},
		{"limit too large", "/search?tag=x&limit=1001", 400, consoleapi.CodeInvalidParameter},
		{"unknown status", "/search?status=acked,exploded", 400, consoleapi.CodeInvalidParameter},
		{"unknown parameter", "/search?tags=PAY_1001", 400, consoleapi.CodeInvalidParameter},
		{"repeated parameter", "/search?tag=a&tag=b", 400, consoleapi.CodeInvalidParameter},
		{"short topic", "/search?topic=billing/orders", 400, consoleapi.CodeInvalidTopic},
		{"bad domain", "/search?topic=http://billing/pay/orders", 400, consoleapi.CodeInvalidTopic},
		{"unknown uid", "/messages/nope", 404, consoleapi.CodeMessageNotFound},
		{"unknown uid consumption", "/messages/nope/consumption", 404, consoleapi.CodeMessageNotFound},
		{"unknown uid timeline", "/messages/nope/timeline", 404, consoleapi.CodeMessageNotFound},
		{"timeline bad cursor", "/messages/s1/timeline?cursor=abc", 400, consoleapi.CodeInvalidCursor},
		{"consumption takes no parameters", "/messages/s1/consumption?sub=x", 400, consoleapi.CodeInvalidParameter},
		{"content not a bool", "/messages/s1?content=maybe", 400, consoleapi.CodeInvalidParameter},
		{"negative maxBytes", "/messages/s1?maxBytes=-1", 400, consoleapi.CodeInvalidParameter},
		{"message id not an id", "/message-ids/abc", 400, consoleapi.CodeInvalidMessageID},
		{"message id with five parts", "/message-ids/1:2:3:4:5", 400, consoleapi.CodeInvalidMessageID},
		{"message id negative ledger", "/message-ids/-1:2", 400, consoleapi.CodeInvalidMessageID},
		{"unknown message id", "/message-ids/9:9:0:0", 404, consoleapi.CodeMessageNotFound},
		{"message id not on the broker", "/message-ids/9:9?topic=billing/pay/orders", 404, consoleapi.CodeMessageNotFound},
		{"ambiguous message id", "/message-ids/7:7:0:0", 409, consoleapi.CodeAmbiguousMessageID},
		{"unknown app", "/registry/apps/nobody", 404, consoleapi.CodeAppNotFound},
		{"subscriptions of a bad topic", "/registry/subscriptions?topic=orders", 400, consoleapi.CodeInvalidTopic},
		{"backlog of an unknown topic", "/stats/backlog?topic=billing/pay/nothing", 404, consoleapi.CodeTopicNotFound},
		{"tag backlog needs a topic", "/stats/tag-backlog", 400, consoleapi.CodeInvalidParameter},
		{"stats take no parameters", "/stats/delay?verbose=1", 400, consoleapi.CodeInvalidParameter},
		{"no such route", "/messages", 404, consoleapi.CodeNotFound},
		{"outside the prefix", "/../../v1/topics", 404, consoleapi.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, code := e.get(tc.path, nil)
			require.Equal(t, tc.status, status)
			require.Equal(t, tc.code, code)
		})
	}

	t.Run("ambiguity resolved by topic", func(t *testing.T) {
		var m messageJSON
		e.mustGet("/message-ids/7:7:0:0?topic=billing/pay/refunds&content=false", &m)
		require.Equal(t, "dup-b", m.UID)
	})

	t.Run("wrong method", func(t *testing.T) {
		res, err := http.Post(e.base+"/search?tag=x", "application/json", strings.NewReader("{}"))
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
		b, _ := io.ReadAll(res.Body)
		require.Contains(t, string(b), consoleapi.CodeMethodNotAllowed)
	})
}

func TestAuth(t *testing.T) {
	authz := consoleapi.AuthorizerFunc(func(r *http.Request) (consoleapi.Principal, error) {
		switch r.Header.Get("Authorization") {
		case "Bearer console-token":
			return consoleapi.Principal{App: "settle"}, nil
		case "Bearer produce-token":
			return consoleapi.Principal{}, fmt.Errorf("app checkout: %w", consoleapi.ErrForbidden)
		case "Bearer broken":
			return consoleapi.Principal{}, errors.New("token store down")
		}
		return consoleapi.Principal{}, consoleapi.ErrUnauthenticated
	})
	e := newEnv(t, func(o *consoleapi.Options) { o.Open, o.Authorizer = false, authz })
	for _, tc := range []struct {
		name, header string
		status       int
		code         string
	}{
		{"no token", "", 401, consoleapi.CodeUnauthenticated},
		{"unknown token", "Bearer nope", 401, consoleapi.CodeUnauthenticated},
		{"no console permission", "Bearer produce-token", 403, consoleapi.CodeForbidden},
		{"authorizer fails", "Bearer broken", 500, consoleapi.CodeInternal},
		{"console app", "Bearer console-token", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code := e.get("/registry/apps", nil, "Authorization", tc.header)
			require.Equal(t, tc.status, status)
			require.Equal(t, tc.code, code)
		})
	}
	t.Run("the OpenAPI document is public", func(t *testing.T) {
		res, err := http.Get(e.base + "/openapi.yaml")
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	})
	t.Run("401 says how to authenticate", func(t *testing.T) {
		res, err := http.Get(e.base + "/registry/apps")
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, `Bearer realm="pulsar-sidecar console"`, res.Header.Get("WWW-Authenticate"))
	})

	closed := newEnv(t, func(o *consoleapi.Options) { o.Open = false })
	status, code := closed.get("/registry/apps", nil, "Authorization", "Bearer console-token")
	require.Equal(t, http.StatusUnauthorized, status, "no authorizer and not open: deny")
	require.Equal(t, consoleapi.CodeUnauthenticated, code)
}

func TestRegistry(t *testing.T) {
	e := newEnv(t)
	res, err := http.Get(e.base + "/registry/apps")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.NotContains(t, strings.ToLower(string(body)), "token", "no token or token hash is ever shown")

	var apps struct{ Apps []consoleapi.App }
	require.NoError(t, json.Unmarshal(body, &apps))
	require.Len(t, apps.Apps, 2)
	require.Equal(t, "checkout", apps.Apps[0].Name)
	require.Equal(t, []string{"billing/pay/*"}, apps.Apps[0].Permissions.Produce)
	require.Equal(t, 500.0, apps.Apps[0].RateLimit.MessagesPerSecond)

	var app consoleapi.App
	e.mustGet("/registry/apps/settle", &app)
	require.True(t, app.Permissions.Console)
	require.Equal(t, []string{}, app.Permissions.Produce)

	var topics struct{ Topics []consoleapi.Topic }
	e.mustGet("/registry/topics", &topics)
	require.Equal(t, "persistent://billing/pay/orders", topics.Topics[0].Name)
	require.Equal(t, "persistent://billing/pay/orders-DLQ", topics.Topics[0].DeadLetterTopic)

	var subs struct{ Subscriptions []consoleapi.Subscription }
	e.mustGet("/registry/subscriptions?topic=billing/pay/orders", &subs)
	var names []string
	for _, s := range subs.Subscriptions {
		names = append(names, s.Name)
	}
	require.Equal(t, []string{"audit", "reporting", "settlement", "vip-only"}, names)
	require.Equal(t, "PAY_1001 || PAY_1002", subs.Subscriptions[2].TagFilter)
	e.mustGet("/registry/subscriptions?topic=billing/pay/refunds", &subs)
	require.Empty(t, subs.Subscriptions)

	_, err = consoleapi.NewStaticRegistry(consoleapi.RegistryConfig{
		Apps:          []consoleapi.App{{Name: "a"}, {Name: "a"}},
		Subscriptions: []consoleapi.Subscription{{Topic: "t/n/x", Name: "s", TagFilter: "A &&"}},
	})
	require.ErrorIs(t, err, consoleapi.ErrInvalidRegistry)
	require.ErrorContains(t, err, "repeated")
	require.ErrorContains(t, err, "tag filter")
}

// stubProviders stand in for components that do not exist yet.
type stubProviders struct{ fail bool }

func (s stubProviders) err() error {
	if s.fail {
		return errors.New("delay index unreachable")
	}
	return nil
}

func (s stubProviders) TagBacklog(_ context.Context, topic, sub string) ([]consoleapi.TagBacklog, error) {
	return []consoleapi.TagBacklog{{Subscription: "settlement", Tag: "PAY_1001", Messages: 3}}, s.err()
}

func (s stubProviders) DelayStats(context.Context) (consoleapi.DelayStats, error) {
	return consoleapi.DelayStats{Pending: 12, ByLevel: map[string]int64{"30s": 10, "5m": 2}}, s.err()
}

func (s stubProviders) SpoolStats(context.Context) (consoleapi.SpoolStats, error) {
	return consoleapi.SpoolStats{Messages: 4, Bytes: 1024}, s.err()
}

func (s stubProviders) ClusterHealth(context.Context) ([]consoleapi.ClusterHealth, error) {
	return []consoleapi.ClusterHealth{{Name: "primary", Role: "primary", Healthy: true, Breaker: "closed"}}, s.err()
}

func TestStats(t *testing.T) {
	e := newEnv(t)
	settlement := e.subscribe("settlement", "settle-1")
	e.subscribe("audit", "audit-1", func(o *pulsar.ConsumerOptions) { o.ReceiverQueueSize = 1 })
	orders := produceOrders(e)
	require.NoError(t, settlement.Ack(e.receive(settlement)))
	require.Len(t, orders, 3)

	type backlog struct {
		Data []struct {
			Topic         string `json:"topic"`
			Subscriptions []struct {
				Name       string     `json:"name"`
				MsgBacklog int64      `json:"msgBacklog"`
				Oldest     *time.Time `json:"oldestBacklogPublishTime"`
				Consumers  []struct {
					Name string `json:"name"`
				} `json:"consumers"`
			} `json:"subscriptions"`
			Missing []string `json:"missingSubscriptions"`
			Error   string   `json:"error"`
		} `json:"data"`
		Note string `json:"note"`
	}
	var b backlog
	e.mustGet("/stats/backlog?topic=billing/pay/orders", &b)
	require.Len(t, b.Data, 1)
	got := map[string]int64{}
	for _, s := range b.Data[0].Subscriptions {
		got[s.Name] = s.MsgBacklog
		require.Len(t, s.Consumers, 1)
	}
	// One batch entry of three messages; one message acked on settlement
	// leaves the entry, and its three messages, in the backlog as Pulsar
	// counts it until the whole batch is acknowledged.
	require.Equal(t, map[string]int64{"audit": 3, "settlement": 3}, got)
	require.Equal(t, []string{"reporting", "vip-only"}, b.Data[0].Missing)

	e.mustGet("/stats/backlog", &b) // every registered topic
	require.Len(t, b.Data, 2)
	require.Equal(t, ordersTopic, b.Data[0].Topic)
	require.Equal(t, "persistent://billing/pay/refunds", b.Data[1].Topic)
	require.NotEmpty(t, b.Data[1].Error, "refunds has never been used: the broker does not know it")

	for _, path := range []string{"/stats/tag-backlog?topic=billing/pay/orders", "/stats/delay", "/stats/spool", "/stats/clusters"} {
		var a struct {
			Data json.RawMessage `json:"data"`
			Note string          `json:"note"`
		}
		e.mustGet(path, &a)
		require.Equal(t, "null", string(a.Data), "%s: a missing provider answers null", path)
		require.NotEmpty(t, a.Note, path)
	}

	none := newEnv(t, func(o *consoleapi.Options) { o.Broker = nil })
	e.mustGet("/stats/backlog", &b)
	none.mustGet("/stats/backlog", &b)
	require.Nil(t, b.Data)
	require.Contains(t, b.Note, "no broker")

	stub := stubProviders{}
	with := newEnv(t, func(o *consoleapi.Options) {
		o.Providers = consoleapi.Providers{TagBacklog: stub, Delay: stub, Spool: stub, Clusters: stub}
	})
	var d struct{ Data consoleapi.DelayStats }
	with.mustGet("/stats/delay", &d)
	require.EqualValues(t, 12, d.Data.Pending)
	var c struct{ Data []consoleapi.ClusterHealth }
	with.mustGet("/stats/clusters", &c)
	require.Equal(t, "closed", c.Data[0].Breaker)

	failing := newEnv(t, func(o *consoleapi.Options) {
		f := stubProviders{fail: true}
		o.Providers = consoleapi.Providers{TagBacklog: f, Delay: f, Spool: f, Clusters: f}
	})
	for _, path := range []string{"/stats/tag-backlog?topic=billing/pay/orders", "/stats/delay", "/stats/spool", "/stats/clusters"} {
		status, code := failing.get(path, nil)
		require.Equal(t, http.StatusServiceUnavailable, status, path)
		require.Equal(t, consoleapi.CodeStatsUnavailable, code, path)
	}
}
