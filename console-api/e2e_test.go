package consoleapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/require"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// order is a produced message and its trace identity.
type order struct {
	uid     string
	id      pulsar.MessageID
	payload string
	tags    []string
}

// produceOrders publishes three orders in one batch entry, as the sidecar's
// producer pool would (batching is its group commit), each with its own
// psc-uid and tags.
func produceOrders(e *env) []order {
	p := e.producer(pulsar.ProducerOptions{BatchingMaxPublishDelay: time.Hour, BatchingMaxMessages: 100})
	orders := []order{
		{uid: "0190f000-0000-7000-8000-000000000001", payload: `{"order":41,"amount":"9.99"}`, tags: []string{"PAY_1002"}},
		{uid: "0190f000-0000-7000-8000-000000000002", payload: `{"order":42,"amount":"12.50","note":"crème brûlée"}`, tags: []string{"PAY_1001"}},
		{uid: "0190f000-0000-7000-8000-000000000003", payload: `{"order":43}`, tags: []string{"PAY_1001"}},
	}
	msgs := make([]*pulsar.ProducerMessage, len(orders))
	for i, o := range orders {
		msgs[i] = &pulsar.ProducerMessage{Payload: []byte(o.payload), Key: "order-" + o.uid[len(o.uid)-1:],
			Properties: map[string]string{"psc-uid": o.uid, "psc-tags": strings.Join(o.tags, ","), "psc-app": "checkout"},
			EventTime:  time.Date(2026, 3, 1, 12, 0, i, 0, time.UTC)}
	}
	ids := e.sendBatch(p, msgs...)
	for i := range orders {
		orders[i].id = ids[i]
	}
	require.Equal(e.t, ids[0].EntryID(), ids[2].EntryID(), "the three orders share one batch entry")
	return orders
}

// produced returns the produce-side events of an order.
func produced(o order, at time.Time) []tracer.Event {
	base := tracer.Event{UID: o.uid, Topic: ordersTopic, Key: "order-" + o.uid[len(o.uid)-1:], Tags: o.tags, App: "checkout",
		ClientIP: "10.0.0.7", Node: "sidecar-0"}
	acc, per := base, base
	acc.Type, acc.Time = tracer.Accepted, at
	per.Type, per.Time, per.MessageID, per.Cluster, per.Latency = tracer.Persisted, at.Add(3*time.Millisecond), formatID(o.id), "primary", 2500*time.Microsecond
	return []tracer.Event{acc, per}
}

// consumed returns a consume-side event of an order.
func consumed(o order, typ tracer.Type, sub, consumer string, at time.Time) tracer.Event {
	return tracer.Event{Type: typ, UID: o.uid, MessageID: formatID(o.id), Topic: ordersTopic, Key: "order-" + o.uid[len(o.uid)-1:],
		Tags: o.tags, App: "settle", ClientIP: "10.0.0.9", Node: "sidecar-1", Subscription: sub, Consumer: consumer, Time: at}
}

// TestMessageLifecycle: produce through the real client, consume and ack
// with a native consumer, record the trace the data plane would, and ask
// the console over HTTP for the message, its timeline and whether it was
// consumed; then the cases where the trace misses the ack (the cursor
// decides), where nothing consumed it yet, and where a tag filter skips it.
func TestMessageLifecycle(t *testing.T) {
	e := newEnv(t)
	settlement := e.subscribe("settlement", "settle-1")
	e.subscribe("audit", "audit-1") // connected, never acks
	e.subscribe("vip-only", "crm-1")
	orders := produceOrders(e)

	for range orders {
		m := e.receive(settlement)
		require.NoError(t, settlement.Ack(m))
	}
	e.waitCursor("settlement", orders[2].id)

	t0 := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Minute)
	full, noAck, filtered := orders[1], orders[2], orders[0]
	e.record(produced(full, t0)...)
	e.record(
		consumed(full, tracer.Delivered, "settlement", "settle-1", t0.Add(time.Second)),
		consumed(full, tracer.Acked, "settlement", "settle-1", t0.Add(1100*time.Millisecond)),
	)
	e.record(produced(noAck, t0)...)
	e.record(consumed(noAck, tracer.Delivered, "settlement", "settle-1", t0.Add(time.Second)))
	e.record(produced(filtered, t0)...)
	e.record(consumed(filtered, tracer.Filtered, "vip-only", "", t0.Add(time.Second)))

	t.Run("message by uid", func(t *testing.T) {
		var m messageJSON
		e.mustGet("/messages/"+full.uid, &m)
		require.Equal(t, full.uid, m.UID)
		require.Equal(t, formatID(full.id), m.MessageID)
		require.Equal(t, ordersTopic, m.Topic)
		require.Equal(t, []string{"PAY_1001"}, m.Tags)
		require.Equal(t, "checkout", m.App)
		require.Equal(t, "10.0.0.7", m.ClientIP)
		require.Equal(t, "primary", m.Cluster)
		require.Equal(t, "consumed", m.Status)
		require.True(t, m.AcceptedAt.Equal(t0))
		require.True(t, m.PersistedAt.Equal(t0.Add(3*time.Millisecond)))
		var types []string
		for _, ev := range m.Timeline {
			types = append(types, ev.Type)
		}
		require.Equal(t, []string{"accepted", "persisted", "delivered", "acked"}, types)
		require.Equal(t, "settle-1", m.Timeline[2].Consumer)
		require.Equal(t, "10.0.0.9", m.Timeline[3].ClientIP)
		require.InDelta(t, 2.5, m.Timeline[1].LatencyMs, 1e-9)
		require.Empty(t, m.TimelineNext)

		require.NotNil(t, m.Content, m.ContentNote)
		require.Equal(t, "utf-8", m.Content.Encoding)
		require.Equal(t, full.payload, m.Content.Payload)
		require.Equal(t, len(full.payload), m.Content.Size)
		require.False(t, m.Content.Truncated)
		require.Equal(t, full.uid, m.Content.Properties["psc-uid"], "the batch's own message, not its neighbour")
		require.Equal(t, "PAY_1001", m.Content.Properties["psc-tags"])
		require.Equal(t, "order-2", m.Content.Key)
		require.Equal(t, 3, m.Content.BatchSize)
		require.NotNil(t, m.Content.PublishTime)
		require.True(t, m.Content.EventTime.Equal(time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC)))
	})

	t.Run("message by message id", func(t *testing.T) {
		var m messageJSON
		e.mustGet("/message-ids/"+formatID(full.id), &m)
		require.Equal(t, full.uid, m.UID)
		require.Len(t, m.Timeline, 4)
		require.Equal(t, full.payload, m.Content.Payload)

		// With the topic and no trace at all: read from the broker, and the
		// psc-uid it carries leads to the timeline.
		var n messageJSON
		e.mustGet("/message-ids/"+formatID(filtered.id)+q("topic", "billing/pay/orders"), &n)
		require.Equal(t, filtered.uid, n.UID)
		require.Equal(t, filtered.payload, n.Content.Payload)
	})

	t.Run("consumed per the trace", func(t *testing.T) {
		var c consumptionJSON
		e.mustGet("/messages/"+full.uid+"/consumption", &c)
		require.Equal(t, map[string]string{
			"settlement": "consumed/trace",
			"audit":      "not_yet/cursor",     // delivered by the broker, but never acked, and no trace says so
			"vip-only":   "filtered/tagFilter", // "VIP" does not match PAY_1001
			"reporting":  "not_yet/trace",      // registered, but not on the broker
		}, c.states())
		s := c.Subscriptions[2]
		require.Equal(t, "settlement", s.Subscription)
		require.True(t, s.Expected)
		require.True(t, *s.OnBroker)
		require.Equal(t, "settle-1", s.Consumer)
		require.Equal(t, "10.0.0.9", s.ClientIP)
		require.Equal(t, "settle", s.App)
		require.True(t, s.Time.Equal(t0.Add(1100*time.Millisecond)))
		require.True(t, s.Cursor.Acknowledged)
		require.Equal(t, []string{"settle"}, s.ExpectedConsumers)
		rep := c.Subscriptions[1]
		require.Equal(t, "reporting", rep.Subscription)
		require.False(t, *rep.OnBroker)
		require.Contains(t, rep.Note, "no such subscription")
		require.Empty(t, c.Notes)
	})

	t.Run("cursor fills a missing acked event", func(t *testing.T) {
		var c consumptionJSON
		e.mustGet("/messages/"+noAck.uid+"/consumption", &c)
		require.Equal(t, "consumed/cursor", c.states()["settlement"])
		s := c.Subscriptions[2]
		require.Equal(t, "settle-1", s.Consumer, "who had it comes from the delivered event")
		require.Nil(t, s.Time, "the cursor does not say when")
		require.Contains(t, s.Note, "no acked event")
		require.Equal(t, "not_yet/cursor", c.states()["audit"])
	})

	t.Run("filtered per the trace", func(t *testing.T) {
		var c consumptionJSON
		e.mustGet("/messages/"+filtered.uid+"/consumption", &c)
		require.Equal(t, "filtered/trace", c.states()["vip-only"])
		require.Equal(t, "consumed/cursor", c.states()["settlement"])
	})

	t.Run("a cursor rewound after the ack", func(t *testing.T) {
		admin, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: e.mp.AdminURL()})
		require.NoError(t, err)
		tn, err := utils.GetTopicName(ordersTopic)
		require.NoError(t, err)
		require.NoError(t, admin.Subscriptions().ResetCursorToTimestamp(*tn, "settlement", 0))
		var c consumptionJSON
		e.mustGet("/messages/"+full.uid+"/consumption", &c)
		s := c.Subscriptions[2]
		require.Equal(t, "consumed/trace", s.State+"/"+s.Source, "it was consumed, as the trace says")
		require.False(t, s.Cursor.Acknowledged)
		require.Contains(t, s.Note, "delivered again")
		// Without the acked event, nothing says it was consumed any more.
		e.mustGet("/messages/"+noAck.uid+"/consumption", &c)
		require.Equal(t, "delivered_not_acked/trace", c.states()["settlement"])
	})

	t.Run("timeline pages", func(t *testing.T) {
		var got []string
		path := "/messages/" + full.uid + "/timeline" + q("limit", "3")
		for range 5 {
			var p pageJSON
			e.mustGet(path, &p)
			for _, ev := range p.Events {
				got = append(got, ev.Type)
			}
			if p.Next == "" {
				break
			}
			path = "/messages/" + full.uid + "/timeline" + q("limit", "3", "cursor", p.Next)
		}
		require.Equal(t, []string{"accepted", "persisted", "delivered", "acked"}, got)
	})
}

// TestNotYetConsumed: a message no subscription has acknowledged.
func TestNotYetConsumed(t *testing.T) {
	e := newEnv(t)
	e.subscribe("settlement", "settle-1") // receives into its queue, never acks
	o := produceOrders(e)[1]
	e.record(produced(o, time.Now().Add(-time.Second))...)

	var c consumptionJSON
	e.mustGet("/messages/"+o.uid+"/consumption", &c)
	require.Equal(t, map[string]string{
		"settlement": "not_yet/cursor",
		"audit":      "not_yet/trace",
		"vip-only":   "filtered/tagFilter",
		"reporting":  "not_yet/trace",
	}, c.states())
	for _, s := range c.Subscriptions {
		if s.Cursor != nil {
			require.False(t, s.Cursor.Acknowledged)
		}
	}
}

// TestDeadLettered: the client's dead-letter policy moves a message after
// its deliveries, acknowledging it on the original subscription; the trace
// says dead_lettered and wins over the cursor, which only shows an ack.
func TestDeadLettered(t *testing.T) {
	e := newEnv(t)
	cons := e.subscribe("settlement", "settle-1", func(o *pulsar.ConsumerOptions) {
		o.DLQ = &pulsar.DLQPolicy{MaxDeliveries: 2, DeadLetterTopic: ordersTopic + "-DLQ", InitialSubscriptionName: "dlq"}
	})
	p := e.producer(pulsar.ProducerOptions{DisableBatching: true})
	uid := "0190f000-0000-7000-8000-0000000000dd"
	id, err := p.Send(e.ctx(), &pulsar.ProducerMessage{Payload: []byte("poison"),
		Properties: map[string]string{"psc-uid": uid, "psc-tags": "PAY_1001"}})
	require.NoError(t, err)
	o := order{uid: uid, id: id, tags: []string{"PAY_1001"}}
	t0 := time.Now().UTC().Add(-time.Minute)
	e.record(produced(o, t0)...)

	for i := range 2 {
		m := e.receive(cons)
		require.EqualValues(t, i, m.RedeliveryCount())
		typ := tracer.Delivered
		if i > 0 {
			typ = tracer.Redelivered
		}
		ev := consumed(o, typ, "settlement", "settle-1", t0.Add(time.Duration(2*i+1)*time.Second))
		ev.Attempt = i
		e.record(ev)
		cons.Nack(m)
		e.record(consumed(o, tracer.Nacked, "settlement", "settle-1", t0.Add(time.Duration(2*i+2)*time.Second)))
	}
	e.waitCursor("settlement", id) // the client moved it to the DLQ and acked it
	dead := consumed(o, tracer.DeadLettered, "settlement", "settle-1", t0.Add(10*time.Second))
	dead.Attempt, dead.Properties = 2, map[string]string{"deadLetterTopic": ordersTopic + "-DLQ"}
	e.record(dead)

	var c consumptionJSON
	e.mustGet("/messages/"+uid+"/consumption", &c)
	require.Equal(t, "dead_lettered/trace", c.states()["settlement"])
	for _, s := range c.Subscriptions {
		if s.Subscription == "settlement" {
			require.Equal(t, 2, s.Attempt)
			require.True(t, s.Cursor.Acknowledged)
		}
	}

	// Before the dead_lettered event arrived, the trace said delivered and
	// nacked: the cursor then said consumed. Both are visible in the
	// timeline.
	var m messageJSON
	e.mustGet("/messages/"+uid, &m)
	require.Equal(t, "dead_lettered", m.Status)
	require.Len(t, m.Timeline, 7)
	require.Equal(t, "poison", m.Content.Payload)
}

// TestBinaryAndLargePayloads: invalid UTF-8 comes back as base64; payloads
// are cut at maxBytes on a character boundary.
func TestBinaryAndLargePayloads(t *testing.T) {
	e := newEnv(t, func(o *consoleapi.Options) { o.MaxPayloadBytes = 1024 })
	p := e.producer(pulsar.ProducerOptions{DisableBatching: true})
	send := func(uid string, payload []byte) order {
		id, err := p.Send(e.ctx(), &pulsar.ProducerMessage{Payload: payload, Properties: map[string]string{"psc-uid": uid}})
		require.NoError(t, err)
		o := order{uid: uid, id: id}
		e.record(produced(o, time.Now().Add(-time.Second))...)
		return o
	}
	bin := send("u-binary", []byte{0xff, 0x00, 0xfe, 'a'})
	text := send("u-text", []byte(strings.Repeat("é", 1000))) // 2000 bytes

	var m messageJSON
	e.mustGet("/messages/"+bin.uid, &m)
	require.Equal(t, "base64", m.Content.Encoding)
	require.Equal(t, "/wD+YQ==", m.Content.Payload)

	e.mustGet("/messages/"+text.uid+q("maxBytes", "5"), &m)
	require.Equal(t, "utf-8", m.Content.Encoding)
	require.Equal(t, "éé", m.Content.Payload, "cut before the third character, not inside it")
	require.True(t, m.Content.Truncated)
	require.Equal(t, 2000, m.Content.Size)

	e.mustGet("/messages/"+text.uid, &m)
	require.Len(t, m.Content.Payload, 1024, "the configured cap")
	require.True(t, m.Content.Truncated)

	e.mustGet("/messages/"+text.uid+q("content", "false"), &m)
	require.Nil(t, m.Content)
	require.NotEmpty(t, m.ContentNote)

	status, code := e.get("/messages/"+text.uid+q("maxBytes", "1025"), nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "INVALID_PARAMETER", code)
}
