package consume

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

func TestReceiveAckOneReplica(t *testing.T) {
	e := newEnv(t)
	admin, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: e.broker.AdminURL()})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	a := e.node(func(o *Options) { o.Backlog = AdminBacklog(admin); o.Registerer = reg })
	ref := newRef("sub")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_1 || PAY_2"})

	msgs := []testMsg{newMsg("PAY_1"), newMsg("PAY_3"), newMsg("PAY_2", "X"), newMsg()}
	msgs[0].props = map[string]string{"order": "42"}
	msgs[0].key = "k1"
	msgs[0].eventTime = time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	produce(t, e.client, ref.TopicName(), msgs)

	got := a.receiveUntil(ref, 2, 5*time.Second)
	require.Equal(t, msgUIDs([]testMsg{msgs[0], msgs[2]}), uids(got))
	for _, m := range got {
		require.NotEmpty(t, m.AckID)
		require.NotNil(t, m.Payload)
		require.Equal(t, "payload "+m.UID, *m.Payload)
		require.Zero(t, m.RedeliveryCount)
		require.NotEmpty(t, m.PublishTime)
		if m.UID == msgs[0].uid {
			require.Equal(t, map[string]string{"order": "42"}, m.Properties)
			require.Equal(t, "k1", m.Key)
			require.Equal(t, []string{"PAY_1"}, m.Tags)
			require.Equal(t, "2026-01-02T03:04:05.006Z", m.EventTime)
		} else {
			// Pulsar's client gives 1970-01-01 for a message without
			// an event time; the answer leaves the field out.
			require.Empty(t, m.EventTime, "no event time was set")
		}
	}
	require.Empty(t, a.receive(ref, 10, 300))
	st := a.stats(ref)
	require.NotNil(t, st.Backlog, st.BacklogError)
	require.EqualValues(t, 2, *st.Backlog, "two delivered, not yet acknowledged")
	require.Equal(t, AckResponse{Acked: 2}, a.ack(ref, got...))
	require.Equal(t, AckResponse{Ignored: 2}, a.ack(ref, got...))
	e.backlogZero(e.broker, ref)

	require.Eventually(t, func() bool {
		st := a.stats(ref)
		return st.Totals.Acked == 2
	}, 5*time.Second, 50*time.Millisecond)
	st = a.stats(ref)
	require.EqualValues(t, 0, *st.Backlog)
	require.EqualValues(t, 2, st.Totals.Delivered)
	require.EqualValues(t, 2, st.Totals.Filtered)
	require.EqualValues(t, 1, st.Tags["PAY_1"].Delivered)
	require.EqualValues(t, 1, st.Tags["PAY_3"].Filtered)
	require.EqualValues(t, 1, st.Tags[TagNone].Filtered)

	require.EqualValues(t, 2, metricValue(t, reg, "psc_consume_messages_total", "subscription", ref.Path(), "outcome", "delivered"))
	require.EqualValues(t, 1, metricValue(t, reg, "psc_consume_tag_messages_total", "subscription", ref.Path(), "tag", "PAY_3", "outcome", "filtered"))
	require.EqualValues(t, 1, metricValue(t, reg, "psc_consume_active_subscriptions"))
	require.Equal(t, 2, a.rec.count(tracer.Filtered))
	require.Equal(t, 2, a.rec.count(tracer.Delivered))
	require.Equal(t, 2, a.rec.count(tracer.Acked))

	var sub Subscription
	code, _ := a.do(http.MethodGet, subPath(ref), nil, &sub)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "PAY_1 || PAY_2", sub.TagFilter)
	require.Equal(t, TypeShared, sub.Type)
	require.Equal(t, "30s", sub.AckTimeout)
	require.Equal(t, 16, sub.MaxDeliveries)
	require.Equal(t, ref.Tenant+"/"+ref.Namespace+"/"+ref.Topic+"-sub-DLQ", sub.DeadLetterTopic)
}

// metricValue reads one counter or gauge whose labels include the given
// name/value pairs.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			return value(m)
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// The consume routes mount beside the produce route on the data plane's
// /v1 group.
func TestRoutesBesideProduce(t *testing.T) {
	e := gin.New()
	v1 := e.Group("/v1")
	v1.POST("/topics/:tenant/:namespace/:topic/messages", func(*gin.Context) {})
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	svc, err := New(Options{Redis: rdb, Clusters: []Cluster{{Client: nil}}, Secret: testSecret})
	require.Error(t, err, "a cluster without a client is refused")
	require.Nil(t, svc)
	(&Service{log: slog.New(slog.DiscardHandler)}).Register(v1, HTTPOptions{})
	require.Len(t, e.Routes(), 10)
}
