package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		code = checkLeaks()
	}
	os.Exit(code)
}

// Known client goroutines that may outlive a test.
const (
	// A producer's send-timeout watcher notices that its producer is
	// closed only when its timer fires, up to SendTimeout after Close
	// (pulsar/producer_partition.go, failTimeoutMessages).
	sendTimeoutWatcher = "github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).failTimeoutMessages"
	// pulsar.NewClient returns an error without closing the connection
	// pool it built when starting the transaction coordinator client fails
	// (pulsar/client_impl.go): the pool's idle-connection checker runs
	// forever. TestTransactionsRefusedFast provokes exactly that.
	idleChecker = "github.com/apache/pulsar-client-go/pulsar/internal.(*connectionPool).checkAndCleanIdleConnections"
	// After Unsubscribe the client marks its consumer closed without
	// stopping it, so Close returns early (pulsar/consumer_partition.go,
	// internalUnsubscribe and Close): each unsubscribed consumer leaves its
	// dispatcher, events loop and ack-grouping ticker running.
	unsubDispatcher = "github.com/apache/pulsar-client-go/pulsar.(*partitionConsumer).dispatcher"
	unsubEvents     = "github.com/apache/pulsar-client-go/pulsar.(*partitionConsumer).runEventsLoop"
	unsubAckTicker  = "github.com/apache/pulsar-client-go/pulsar.newAckGroupingTracker.func1"
	// A producer the client closes itself because re-registering failed
	// for good (TopicTerminatedError after a topic's termination) keeps its
	// reconnect event loop: only Close cancels it, and Close then returns
	// early (pulsar/producer_partition.go, runEventsLoop and doClose).
	closedProducerLoop = "github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).runEventsLoop.func1"
)

// closedByBroker counts producers closed that way, each leaking one
// closedProducerLoop.
var closedByBroker atomic.Int64

// unsubscribed counts consumers closed through Unsubscribe, each leaking
// the three goroutines above.
var unsubscribed atomic.Int64

// failedClients counts pulsar.NewClient calls that failed after building a
// connection pool, each leaking one idleChecker.
var failedClients atomic.Int64

// checkLeaks fails the run if any goroutine outlives the tests: every
// client, producer, consumer and broker is closed by t.Cleanup. The only
// exceptions are the send-timeout watchers and one idle checker per failed
// client, counted exactly.
func checkLeaks() int {
	if err := goleak.Find(goleak.IgnoreAnyFunction(sendTimeoutWatcher), goleak.IgnoreAnyFunction(idleChecker),
		goleak.IgnoreTopFunction(unsubDispatcher), goleak.IgnoreTopFunction(unsubEvents), goleak.IgnoreTopFunction(unsubAckTicker),
		goleak.IgnoreTopFunction(closedProducerLoop),
		// A producer closed while its reconnect loop waits between lookups
		// keeps that loop until the backoff ends (fault tests stop brokers).
		goleak.IgnoreAnyFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).reconnectToBroker")); err != nil {
		fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
		return 1
	}
	buf := make([]byte, 1<<22)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, f := range []string{unsubDispatcher, unsubEvents, unsubAckTicker} {
		if n := int64(strings.Count(stacks, f+"(")); n > unsubscribed.Load() {
			fmt.Fprintf(os.Stderr, "goleak: %d goroutines in %s, %d explained by unsubscribed consumers: a consumer was not closed\n", n, f, unsubscribed.Load())
			return 1
		}
	}
	if n := int64(strings.Count(stacks, closedProducerLoop+"(")); n > closedByBroker.Load() {
		fmt.Fprintf(os.Stderr, "goleak: %d producer event loops left, %d explained by producers closed by the broker: a producer was not closed\n", n, closedByBroker.Load())
		return 1
	}
	if n := int64(strings.Count(stacks, idleChecker+"(")); n > failedClients.Load() {
		fmt.Fprintf(os.Stderr, "goleak: %d connection pools left open, %d explained by failed NewClient calls: a client was not closed\n", n, failedClients.Load())
		return 1
	}
	return 0
}

// Environment variables that point the suite at a real Pulsar.
const (
	envServiceURL = "PULSAR_SERVICE_URL"
	envAdminURL   = "PULSAR_ADMIN_URL"
	envLog        = "PULSAR_CONFORMANCE_LOG"
	// envDataDir runs every minipulsar of the suite with a data directory
	// and an entry cache of one byte, so that every dispatch, redelivery,
	// seek and peek reads the entry back from disk (ADR 001, "Revision: an
	// entry cache"); make test runs the suite both ways.
	envDataDir = "MINIPULSAR_CONFORMANCE_DATADIR"
)

// Timeouts shared by the tests. A broker that answers at all answers well
// within these; waiting for the client's own 30 s and 60 s defaults would
// only make failures slow.
const (
	opTimeout      = 10 * time.Second // client OperationTimeout
	receiveTimeout = 10 * time.Second // waiting for a message that must come
	quietPeriod    = 300 * time.Millisecond
	nackDelay      = 100 * time.Millisecond
)

// realPulsar reports whether the suite runs against a real broker.
func realPulsar() bool {
	return os.Getenv(envServiceURL) != "" && os.Getenv(envAdminURL) != ""
}

// target returns the broker the test talks to: the real Pulsar named by
// PULSAR_SERVICE_URL and PULSAR_ADMIN_URL, or else a fresh minipulsar that
// is closed when the test ends.
func target(t *testing.T) (serviceURL, adminURL string) {
	t.Helper()
	if realPulsar() {
		return os.Getenv(envServiceURL), os.Getenv(envAdminURL)
	}
	// As Pulsar, tenants and namespaces must exist (public/default does).
	s := minipulsar.RunOptionsT(t, withDataDir(t, minipulsar.Options{Namespaces: minipulsar.RequireNamespaces}))
	return s.ServiceURL(), s.AdminURL()
}

// withDataDir gives opts a data directory and a one-byte entry cache when
// MINIPULSAR_CONFORMANCE_DATADIR is set.
func withDataDir(t *testing.T, opts minipulsar.Options) minipulsar.Options {
	if os.Getenv(envDataDir) != "" {
		opts.DataDir, opts.EntryCacheSize = t.TempDir(), 1
	}
	return opts
}

// clientLogger discards the client's logs unless PULSAR_CONFORMANCE_LOG asks
// for them.
func clientLogger() pulsarlog.Logger {
	var level slog.Level
	switch strings.ToLower(os.Getenv(envLog)) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return pulsarlog.NewLoggerWithSlog(slog.New(slog.DiscardHandler))
	}
	return pulsarlog.NewLoggerWithSlog(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
}

// newClient returns a client for url (pulsar:// or http://) that is closed
// when the test ends. Each client gets its own metrics registry so tests do
// not share state through prometheus.DefaultRegisterer.
func newClient(t *testing.T, url string, opts ...func(*pulsar.ClientOptions)) pulsar.Client {
	t.Helper()
	o := pulsar.ClientOptions{
		URL:               url,
		OperationTimeout:  opTimeout,
		ConnectionTimeout: 5 * time.Second,
		Logger:            clientLogger(),
		MetricsRegisterer: prometheus.NewRegistry(),
	}
	for _, f := range opts {
		f(&o)
	}
	c, err := pulsar.NewClient(o)
	require.NoError(t, err, "pulsar.NewClient(%s)", url)
	t.Cleanup(c.Close)
	return c
}

// newAdmin returns a pulsaradmin client for the admin URL.
func newAdmin(t *testing.T, adminURL string) pulsaradmin.Client {
	t.Helper()
	a, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: adminURL})
	require.NoError(t, err)
	return a
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// uniqueName returns "conf-<test name>-<random>", short and safe for topic
// and subscription names, and unique even on a shared cluster.
func uniqueName(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(unsafeChars.ReplaceAllString(t.Name(), "-"))
	name = strings.TrimPrefix(name, "test")
	if len(name) > 40 {
		name = name[:40]
	}
	var b [4]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return "conf-" + strings.Trim(name, "-") + "-" + hex.EncodeToString(b[:])
}

// newTopic returns a fresh fully qualified persistent topic name.
func newTopic(t *testing.T) string {
	t.Helper()
	return "persistent://public/default/" + uniqueName(t)
}

// adminTopic parses a full topic name for pulsaradmin.
func adminTopic(t *testing.T, topic string) utils.TopicName {
	t.Helper()
	tn, err := utils.GetTopicName(topic)
	require.NoError(t, err)
	return *tn
}

// timeout returns a context that expires after d or at the end of the test.
func timeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newProducer creates a producer that is closed when the test ends.
func newProducer(t *testing.T, c pulsar.Client, o pulsar.ProducerOptions) pulsar.Producer {
	t.Helper()
	if o.SendTimeout == 0 {
		o.SendTimeout = opTimeout
	}
	p, err := c.CreateProducer(o)
	require.NoError(t, err, "CreateProducer(%s)", o.Topic)
	t.Cleanup(p.Close)
	return p
}

// subscribe creates a consumer that is closed when the test ends. Unless
// the options say otherwise, negative acks are redelivered after nackDelay.
func subscribe(t *testing.T, c pulsar.Client, o pulsar.ConsumerOptions) pulsar.Consumer {
	t.Helper()
	if o.NackRedeliveryDelay == 0 {
		o.NackRedeliveryDelay = nackDelay
	}
	cons, err := c.Subscribe(o)
	require.NoError(t, err, "Subscribe(%s, %s)", o.Topic, o.SubscriptionName)
	t.Cleanup(cons.Close)
	return cons
}

// newReader creates a reader that is closed when the test ends.
func newReader(t *testing.T, c pulsar.Client, o pulsar.ReaderOptions) pulsar.Reader {
	t.Helper()
	r, err := c.CreateReader(o)
	require.NoError(t, err, "CreateReader(%s)", o.Topic)
	t.Cleanup(r.Close)
	return r
}

// payload returns the payload of the i-th test message.
func payload(i int) []byte { return fmt.Appendf(nil, "msg-%04d", i) }

// sendN publishes n messages payload(from)..payload(from+n-1) synchronously
// and returns their ids.
func sendN(t *testing.T, p pulsar.Producer, from, n int) []pulsar.MessageID {
	t.Helper()
	ids := make([]pulsar.MessageID, 0, n)
	for i := from; i < from+n; i++ {
		id, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: payload(i)})
		require.NoError(t, err, "Send %d", i)
		ids = append(ids, id)
	}
	return ids
}

// sendBatch publishes n messages asynchronously, flushes and returns their
// ids in send order. With a batching producer they share entries.
func sendBatch(t *testing.T, p pulsar.Producer, from, n int) []pulsar.MessageID {
	t.Helper()
	ids := make([]pulsar.MessageID, n)
	errs := make(chan error, n)
	for i := range n {
		p.SendAsync(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: payload(from + i)},
			func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				ids[i] = id
				errs <- err
			})
	}
	require.NoError(t, p.FlushWithCtx(timeout(t, opTimeout)))
	for range n {
		select {
		case err := <-errs:
			require.NoError(t, err)
		case <-time.After(receiveTimeout):
			t.Fatalf("SendAsync callbacks: timed out")
		}
	}
	return ids
}

// receive waits for one message.
func receive(t *testing.T, c pulsar.Consumer) pulsar.Message {
	t.Helper()
	msg, err := c.Receive(timeout(t, receiveTimeout))
	require.NoError(t, err, "Receive on %s: no message within %s", c.Subscription(), receiveTimeout)
	return msg
}

// receiveN waits for n messages, in arrival order.
func receiveN(t *testing.T, c pulsar.Consumer, n int) []pulsar.Message {
	t.Helper()
	msgs := make([]pulsar.Message, 0, n)
	for len(msgs) < n {
		msg, err := c.Receive(timeout(t, receiveTimeout))
		require.NoError(t, err, "Receive on %s: got %d of %d messages", c.Subscription(), len(msgs), n)
		msgs = append(msgs, msg)
	}
	return msgs
}

// ackAll acknowledges every message.
func ackAll(t *testing.T, c pulsar.Consumer, msgs []pulsar.Message) {
	t.Helper()
	for _, m := range msgs {
		require.NoError(t, c.Ack(m))
	}
}

// expectNothing asserts that no message arrives for quietPeriod.
func expectNothing(t *testing.T, c pulsar.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), quietPeriod)
	defer cancel()
	msg, err := c.Receive(ctx)
	if err == nil {
		t.Fatalf("%s: unexpected message %q (id %v, redelivery %d)", c.Subscription(), msg.Payload(), msg.ID(), msg.RedeliveryCount())
	}
}

// payloads returns the payloads of msgs as strings.
func payloads(msgs []pulsar.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload())
	}
	return out
}

// wantPayloads returns payload(from)..payload(from+n-1) as strings.
func wantPayloads(from, n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = string(payload(from + i))
	}
	return out
}

// sameEntry reports whether two ids name the same ledger entry.
func sameEntry(a, b pulsar.MessageID) bool {
	return a.LedgerID() == b.LedgerID() && a.EntryID() == b.EntryID()
}

// before reports whether id a is strictly before id b (ledger, entry, batch).
func before(a, b pulsar.MessageID) bool {
	if a.LedgerID() != b.LedgerID() {
		return a.LedgerID() < b.LedgerID()
	}
	if a.EntryID() != b.EntryID() {
		return a.EntryID() < b.EntryID()
	}
	return a.BatchIdx() < b.BatchIdx()
}

// eventually retries f until it returns nil or d passes; then it fails the
// test with f's last error.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %s: %v", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
