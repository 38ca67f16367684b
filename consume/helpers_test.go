package consume

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

var testSecret = []byte("0123456789abcdef-test-secret")

func init() { gin.SetMode(gin.ReleaseMode) }

// env is one broker (plus, optionally, a disaster-recovery broker) and one
// redis-server shared by the replicas of a test.
type env struct {
	t      testing.TB
	broker *minipulsar.Server
	dr     *minipulsar.Server
	redis  *testredis.Server
	rdb    *redis.Client
	client pulsar.Client // native, to produce and inspect
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, broker: minipulsar.RunT(t), redis: testredis.Start(t)}
	e.rdb = e.redis.Client()
	e.client = newClient(t, e.broker)
	return e
}

// withDR adds a second broker as the disaster-recovery cluster.
func (e *env) withDR() *env {
	e.dr = minipulsar.RunT(e.t)
	return e
}

func newClient(t testing.TB, b *minipulsar.Server) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:               b.ServiceURL(),
		OperationTimeout:  10 * time.Second,
		ConnectionTimeout: 5 * time.Second,
		Logger:            pulsarlog.NewLoggerWithSlog(slog.New(slog.DiscardHandler)),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// node is one sidecar replica: its own Pulsar clients, a Service, and gin
// over real HTTP.
type node struct {
	t    testing.TB
	svc  *Service
	srv  *httptest.Server
	base string
	rec  *recorder
}

// testApp is the header tests use to say which app calls.
const testApp = "X-Test-App"

func (e *env) node(opts ...func(*Options)) *node {
	t := e.t
	t.Helper()
	rec := &recorder{}
	o := Options{
		Redis:     e.rdb,
		Clusters:  []Cluster{{Name: "primary", Client: newClient(t, e.broker)}},
		Secret:    testSecret,
		Node:      "test",
		Recorder:  rec,
		Logger:    slog.New(slog.DiscardHandler),
		Consumers: ConsumerOptions{ActiveWindow: time.Second},
		Stats:     StatsOptions{Interval: 200 * time.Millisecond},
	}
	if e.dr != nil {
		o.Clusters = append(o.Clusters, Cluster{Name: "dr", Client: newClient(t, e.dr)})
	}
	for _, f := range opts {
		f(&o)
	}
	svc, err := New(o)
	require.NoError(t, err)
	require.NoError(t, svc.Start(context.Background()))
	r := gin.New()
	v1 := r.Group("/v1", func(c *gin.Context) {
		if app := c.GetHeader(testApp); app != "" {
			c.Set("app", app)
		}
		c.Next()
	})
	svc.Register(v1, HTTPOptions{
		AppFromContext: func(c *gin.Context) (string, bool) {
			v, ok := c.Get("app")
			if !ok {
				return "", false
			}
			return v.(string), true
		},
		Authorizer: AuthorizerFunc(func(app, tenant, ns, topic, sub string) bool {
			return app != "reader" || sub != "private"
		}),
		MayConsumeContext: func(c *gin.Context, tenant, ns, topic string) bool {
			return c.GetHeader(testApp) != "nobody"
		},
	})
	srv := httptest.NewServer(r)
	n := &node{t: t, svc: svc, srv: srv, base: srv.URL + "/v1/topics/", rec: rec}
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, svc.Close(ctx))
	})
	return n
}

// do sends a request as app "billing" (unless app says otherwise) and
// decodes the answer into out when it is 2xx, or returns the error body.
func (n *node) do(method, path string, body any, out any, app ...string) (int, ErrorBody) {
	n.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(n.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	require.NoError(n.t, err)
	who := "billing"
	if len(app) > 0 {
		who = app[0]
	}
	if who != "" {
		req.Header.Set(testApp, who)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(n.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(n.t, err)
	if resp.StatusCode >= 300 {
		var eb struct {
			Error ErrorBody `json:"error"`
		}
		require.NoError(n.t, json.Unmarshal(raw, &eb), "body %s", raw)
		return resp.StatusCode, eb.Error
	}
	if out != nil && len(raw) > 0 {
		require.NoError(n.t, json.Unmarshal(raw, out), "body %s", raw)
	}
	return resp.StatusCode, ErrorBody{}
}

func subPath(ref SubscriptionRef) string {
	return ref.Tenant + "/" + ref.Namespace + "/" + ref.Topic + "/subscriptions/" + ref.Subscription
}

func (n *node) put(ref SubscriptionRef, spec SubscriptionSpec) *Subscription {
	n.t.Helper()
	var sub Subscription
	st, eb := n.do(http.MethodPut, subPath(ref), spec, &sub)
	require.Contains(n.t, []int{http.StatusOK, http.StatusCreated}, st, "%+v", eb)
	return &sub
}

func (n *node) receive(ref SubscriptionRef, maxN, waitMs int) []Message {
	n.t.Helper()
	var resp ReceiveResponse
	st, eb := n.do(http.MethodPost, subPath(ref)+"/receive", ReceiveRequest{Max: maxN, WaitMs: waitMs}, &resp)
	require.Equal(n.t, http.StatusOK, st, "%+v", eb)
	return resp.Messages
}

func (n *node) ack(ref SubscriptionRef, msgs ...Message) AckResponse {
	n.t.Helper()
	var resp AckResponse
	st, eb := n.do(http.MethodPost, subPath(ref)+"/ack", AckRequest{AckIDs: ackIDs(msgs)}, &resp)
	require.Equal(n.t, http.StatusOK, st, "%+v", eb)
	return resp
}

func (n *node) nack(ref SubscriptionRef, after string, msgs ...Message) NackResponse {
	n.t.Helper()
	var resp NackResponse
	st, eb := n.do(http.MethodPost, subPath(ref)+"/nack", NackRequest{AckIDs: ackIDs(msgs), RedeliverAfter: after}, &resp)
	require.Equal(n.t, http.StatusOK, st, "%+v", eb)
	return resp
}

func (n *node) stats(ref SubscriptionRef) Stats {
	n.t.Helper()
	var st Stats
	code, eb := n.do(http.MethodGet, subPath(ref)+"/stats", nil, &st)
	require.Equal(n.t, http.StatusOK, code, "%+v", eb)
	return st
}

func ackIDs(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.AckID
	}
	return out
}

// receiveUntil receives until it has n messages or the deadline passes.
func (n *node) receiveUntil(ref SubscriptionRef, want int, within time.Duration) []Message {
	n.t.Helper()
	var out []Message
	deadline := time.Now().Add(within)
	for len(out) < want && time.Now().Before(deadline) {
		out = append(out, n.receive(ref, want-len(out), 200)...)
	}
	return out
}

// testMsg is a message as the proxy would produce it.
type testMsg struct {
	uid     string
	tags    []string
	key     string
	payload []byte
	props   map[string]string
	app     string // psc-app; "producer" when empty
	// eventTime is set on the Pulsar message when not zero.
	eventTime time.Time
}

// pulsarProperties mirrors produce.Message.PulsarProperties.
func (m testMsg) pulsarProperties() map[string]string {
	p := map[string]string{}
	for k, v := range m.props {
		p[k] = v
	}
	p[wire.PropUID] = m.uid
	p[wire.PropApp] = "producer"
	if m.app != "" {
		p[wire.PropApp] = m.app
	}
	p["psc-accepted-at"] = time.Now().UTC().Format(TimeLayout)
	if len(m.tags) > 0 {
		tags := slices.Clone(m.tags)
		slices.Sort(tags)
		p[wire.PropTags] = strings.Join(slices.Compact(tags), ",")
	}
	return p
}

func newMsg(tags ...string) testMsg {
	uid := uuid.Must(uuid.NewV7()).String()
	return testMsg{uid: uid, tags: tags, payload: []byte("payload " + uid)}
}

// produce publishes with batching on, as the proxy does.
func produce(t testing.TB, c pulsar.Client, topic string, msgs []testMsg) []pulsar.MessageID {
	t.Helper()
	p, err := c.CreateProducer(pulsar.ProducerOptions{
		Topic:                   topic,
		BatchingMaxPublishDelay: 5 * time.Millisecond,
		BatchingMaxMessages:     100,
		SendTimeout:             10 * time.Second,
	})
	require.NoError(t, err)
	defer p.Close()
	ids := make([]pulsar.MessageID, len(msgs))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i, m := range msgs {
		wg.Add(1)
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: m.payload, Key: m.key, Properties: m.pulsarProperties(), EventTime: m.eventTime},
			func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				ids[i] = id
			})
	}
	require.NoError(t, p.FlushWithCtx(context.Background()))
	wg.Wait()
	require.NoError(t, firstErr)
	return ids
}

// produceEach publishes with batching off: one entry per message, so
// positions in the backlog are messages.
func produceEach(t testing.TB, c pulsar.Client, topic string, msgs []testMsg) []pulsar.MessageID {
	t.Helper()
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true, SendTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer p.Close()
	ids := make([]pulsar.MessageID, len(msgs))
	for i, m := range msgs {
		ids[i], err = p.Send(context.Background(), &pulsar.ProducerMessage{Payload: m.payload, Key: m.key, Properties: m.pulsarProperties(), EventTime: m.eventTime})
		require.NoError(t, err)
	}
	return ids
}

func uids(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.UID
	}
	slices.Sort(out)
	return out
}

func msgUIDs(msgs []testMsg) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.uid
	}
	slices.Sort(out)
	return out
}

// recorder keeps trace events.
type recorder struct {
	mu     sync.Mutex
	events []tracer.Event
}

func (r *recorder) Record(ev tracer.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) count(typ tracer.Type) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

var topicSeq struct {
	sync.Mutex
	n int
}

// newRef names a fresh topic and subscription for a test.
func newRef(sub string) SubscriptionRef {
	topicSeq.Lock()
	defer topicSeq.Unlock()
	topicSeq.n++
	return SubscriptionRef{Tenant: "billing", Namespace: "payments", Topic: fmt.Sprintf("orders-%d", topicSeq.n), Subscription: sub}
}

// backlogZero waits until the broker has every message of the
// subscription acknowledged.
func (e *env) backlogZero(b *minipulsar.Server, ref SubscriptionRef) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		n, err := b.Backlog(ref.TopicName(), ref.Subscription)
		return err == nil && n == 0
	}, 10*time.Second, 20*time.Millisecond, "backlog of %s did not reach 0", ref.Path())
}
