package consoleapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

const (
	ordersTopic = "persistent://billing/pay/orders"
	opTimeout   = 10 * time.Second
)

// registry is the configuration every test console serves.
var registry = consoleapi.RegistryConfig{
	Apps: []consoleapi.App{
		{Name: "checkout", Permissions: consoleapi.Permissions{Produce: []string{"billing/pay/*"}},
			RateLimit: &consoleapi.RateLimit{MessagesPerSecond: 500, Burst: 50}},
		{Name: "settle", Permissions: consoleapi.Permissions{Consume: []string{"billing/pay/orders"}, Console: true}},
	},
	Topics: []consoleapi.Topic{
		{Name: "billing/pay/orders", Description: "purchase records", DeadLetterTopic: "billing/pay/orders-DLQ"},
		{Name: "billing/pay/refunds"},
	},
	Subscriptions: []consoleapi.Subscription{
		{Topic: "billing/pay/orders", Name: "settlement", TagFilter: "PAY_1001 || PAY_1002", Type: "Shared", ExpectedConsumers: []string{"settle"}},
		{Topic: "billing/pay/orders", Name: "audit", ExpectedConsumers: []string{"audit"}},
		{Topic: "billing/pay/orders", Name: "vip-only", TagFilter: "VIP", ExpectedConsumers: []string{"crm"}},
		{Topic: "billing/pay/orders", Name: "reporting", ExpectedConsumers: []string{"bi"}},
	},
}

// env is a console over a real SQLite store and a minipulsar broker driven
// by the real client, served over loopback HTTP.
type env struct {
	t      *testing.T
	mp     *minipulsar.Server
	client pulsar.Client
	store  *tracer.SQLite
	broker *consoleapi.PulsarAdmin
	api    *consoleapi.API
	base   string // http://127.0.0.1:port/console/v1
}

func newEnv(t *testing.T, tune ...func(*consoleapi.Options)) *env {
	t.Helper()
	e := &env{t: t}
	e.mp = minipulsar.RunT(t)
	var err error
	e.store, err = tracer.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "trace.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.store.Close()) })
	e.broker, err = consoleapi.NewPulsarAdmin(&config.Config{WebServiceURL: e.mp.AdminURL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.broker.Close() })
	reg, err := consoleapi.NewStaticRegistry(registry)
	require.NoError(t, err)
	opts := consoleapi.Options{Store: e.store, Broker: e.broker, Registry: reg, Open: true,
		Logger: slog.New(slog.DiscardHandler), Timeout: opTimeout}
	for _, f := range tune {
		f(&opts)
	}
	e.api, err = consoleapi.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(e.api.Handler())
	t.Cleanup(srv.Close)
	e.base = srv.URL + consoleapi.Prefix
	e.client, err = pulsar.NewClient(pulsar.ClientOptions{
		URL: e.mp.ServiceURL(), OperationTimeout: opTimeout, ConnectionTimeout: 5 * time.Second,
		Logger:            pulsarlog.NewLoggerWithSlog(slog.New(slog.DiscardHandler)),
		MetricsRegisterer: prometheus.NewRegistry(),
	})
	require.NoError(t, err)
	t.Cleanup(e.client.Close)
	return e
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) producer(opts pulsar.ProducerOptions) pulsar.Producer {
	e.t.Helper()
	if opts.Topic == "" {
		opts.Topic = ordersTopic
	}
	opts.SendTimeout = opTimeout
	p, err := e.client.CreateProducer(opts)
	require.NoError(e.t, err)
	e.t.Cleanup(p.Close)
	return p
}

func (e *env) subscribe(sub, consumer string, tune ...func(*pulsar.ConsumerOptions)) pulsar.Consumer {
	e.t.Helper()
	o := pulsar.ConsumerOptions{Topic: ordersTopic, SubscriptionName: sub, Name: consumer, Type: pulsar.Shared,
		AckWithResponse: true, NackRedeliveryDelay: 50 * time.Millisecond}
	for _, f := range tune {
		f(&o)
	}
	c, err := e.client.Subscribe(o)
	require.NoError(e.t, err)
	e.t.Cleanup(c.Close)
	return c
}

// sendBatch publishes msgs through one batch and returns their ids in order.
func (e *env) sendBatch(p pulsar.Producer, msgs ...*pulsar.ProducerMessage) []pulsar.MessageID {
	e.t.Helper()
	ids := make([]pulsar.MessageID, len(msgs))
	errs := make(chan error, len(msgs))
	for i, m := range msgs {
		p.SendAsync(e.ctx(), m, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			ids[i] = id
			errs <- err
		})
	}
	require.NoError(e.t, p.FlushWithCtx(e.ctx()))
	for range msgs {
		require.NoError(e.t, <-errs)
	}
	return ids
}

func (e *env) receive(c pulsar.Consumer) pulsar.Message {
	e.t.Helper()
	m, err := c.Receive(e.ctx())
	require.NoError(e.t, err, "receive on %s", c.Subscription())
	return m
}

// formatID writes a message id as the sidecar does (wire.FormatMessageID).
func formatID(id pulsar.MessageID) string {
	return fmt.Sprintf("%d:%d:%d:%d", id.LedgerID(), id.EntryID(), id.PartitionIdx(), id.BatchIdx())
}

// record writes trace events as the data plane's pipeline would.
func (e *env) record(evs ...tracer.Event) {
	e.t.Helper()
	require.NoError(e.t, e.store.Write(e.ctx(), evs))
}

// waitCursor waits until sub's cursor on the broker is past id (acks are
// confirmed, but the cursor is read through another connection).
func (e *env) waitCursor(sub string, id pulsar.MessageID) {
	e.t.Helper()
	pos := consoleapi.Position{Ledger: id.LedgerID(), Entry: id.EntryID()}
	deadline := time.Now().Add(opTimeout)
	for {
		cs, err := e.broker.Cursors(e.ctx(), ordersTopic)
		require.NoError(e.t, err)
		if c, ok := cs[sub]; ok && c.Acknowledged(pos) {
			return
		}
		require.True(e.t, time.Now().Before(deadline), "cursor of %s never passed %s: %+v", sub, pos, cs[sub])
		time.Sleep(20 * time.Millisecond)
	}
}

// get sends GET base+path and decodes the JSON answer into out (when not
// nil); it returns the status and the error body's code, if any.
func (e *env) get(path string, out any, header ...string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx(), http.MethodGet, e.base+path, nil)
	require.NoError(e.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	if res.StatusCode != http.StatusOK {
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		require.NoError(e.t, json.Unmarshal(body, &eb), "error body %s", body)
		require.NotEmpty(e.t, eb.Error.Code, "error body %s", body)
		require.NotEmpty(e.t, eb.Error.Message, "error body %s", body)
		return res.StatusCode, eb.Error.Code
	}
	require.Equal(e.t, "application/json; charset=utf-8", res.Header.Get("Content-Type"))
	if out != nil {
		require.NoError(e.t, json.Unmarshal(body, out), "body %s", body)
	}
	return res.StatusCode, ""
}

// mustGet is get that requires a 200.
func (e *env) mustGet(path string, out any) {
	e.t.Helper()
	status, code := e.get(path, out)
	require.Equal(e.t, http.StatusOK, status, "GET %s: %s", path, code)
}

// JSON shapes of the answers, as a client would declare them.
type eventJSON struct {
	ID           string            `json:"id"`
	Type         string            `json:"type"`
	Time         time.Time         `json:"time"`
	UID          string            `json:"uid"`
	MessageID    string            `json:"messageId"`
	Topic        string            `json:"topic"`
	Key          string            `json:"key"`
	Tags         []string          `json:"tags"`
	App          string            `json:"app"`
	ClientIP     string            `json:"clientIp"`
	Subscription string            `json:"subscription"`
	Consumer     string            `json:"consumer"`
	LatencyMs    float64           `json:"latencyMs"`
	Properties   map[string]string `json:"properties"`
}

type messageJSON struct {
	UID          string      `json:"uid"`
	MessageID    string      `json:"messageId"`
	Topic        string      `json:"topic"`
	Key          string      `json:"key"`
	Tags         []string    `json:"tags"`
	App          string      `json:"app"`
	ClientIP     string      `json:"clientIp"`
	Cluster      string      `json:"cluster"`
	Status       string      `json:"status"`
	AcceptedAt   *time.Time  `json:"acceptedAt"`
	PersistedAt  *time.Time  `json:"persistedAt"`
	Timeline     []eventJSON `json:"timeline"`
	TimelineNext string      `json:"timelineNext"`
	Content      *struct {
		Topic        string            `json:"topic"`
		MessageID    string            `json:"messageId"`
		Encoding     string            `json:"encoding"`
		Payload      string            `json:"payload"`
		Size         int               `json:"size"`
		Truncated    bool              `json:"truncated"`
		Key          string            `json:"key"`
		Properties   map[string]string `json:"properties"`
		PublishTime  *time.Time        `json:"publishTime"`
		EventTime    *time.Time        `json:"eventTime"`
		ProducerName string            `json:"producerName"`
		BatchSize    int               `json:"batchSize"`
	} `json:"content"`
	ContentNote string `json:"contentNote"`
}

type consumptionJSON struct {
	UID           string   `json:"uid"`
	MessageID     string   `json:"messageId"`
	Topic         string   `json:"topic"`
	Tags          []string `json:"tags"`
	Notes         []string `json:"notes"`
	Subscriptions []struct {
		Subscription      string     `json:"subscription"`
		Expected          bool       `json:"expected"`
		OnBroker          *bool      `json:"onBroker"`
		TagFilter         string     `json:"tagFilter"`
		ExpectedConsumers []string   `json:"expectedConsumers"`
		State             string     `json:"state"`
		Source            string     `json:"source"`
		Consumer          string     `json:"consumer"`
		ClientIP          string     `json:"clientIp"`
		App               string     `json:"app"`
		Time              *time.Time `json:"time"`
		Attempt           int        `json:"attempt"`
		Cursor            *struct {
			MarkDeletePosition string `json:"markDeletePosition"`
			Acknowledged       bool   `json:"acknowledged"`
		} `json:"cursor"`
		Note string `json:"note"`
	} `json:"subscriptions"`
}

// states returns subscription -> "state/source".
func (c *consumptionJSON) states() map[string]string {
	out := map[string]string{}
	for _, s := range c.Subscriptions {
		out[s.Subscription] = s.State + "/" + s.Source
	}
	return out
}

type pageJSON struct {
	Events []eventJSON `json:"events"`
	Next   string      `json:"next"`
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}
