package conformance

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsar/backoff"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// The tests in this file need the broker to misbehave on demand, which
// only minipulsar's fault injection can do; they use its Go API for that
// and nothing else, and judge the outcome through the client as the other
// tests do.

// faultyBroker starts a minipulsar, or skips the test against a real one.
func faultyBroker(t *testing.T) *minipulsar.Server {
	t.Helper()
	return faultyBrokerOptions(t, minipulsar.Options{})
}

// faultyBrokerOptions is faultyBroker with options.
func faultyBrokerOptions(t *testing.T, opts minipulsar.Options) *minipulsar.Server {
	t.Helper()
	if realPulsar() {
		t.Skipf("fault injection needs minipulsar; %s is set, so this test cannot run against a real Pulsar", envServiceURL)
	}
	opts.Namespaces = minipulsar.RequireNamespaces
	return minipulsar.RunOptionsT(t, withDataDir(t, opts))
}

// steadyBackoff retries every 100 ms instead of the client's doubling
// backoff, so tests that make the client reconnect several times do not
// wait seconds between attempts.
type steadyBackoff struct{}

func (steadyBackoff) Next() time.Duration       { return 100 * time.Millisecond }
func (steadyBackoff) IsMaxBackoffReached() bool { return false }
func (steadyBackoff) Reset()                    {}

func steady() backoff.Policy { return steadyBackoff{} }

// checkAtLeastOnce asserts that msgs hold every payload of want at least
// once and that only payloads in mayRepeat appear more than once.
func checkAtLeastOnce(t *testing.T, msgs []pulsar.Message, want []string, mayRepeat map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range msgs {
		seen[string(m.Payload())]++
	}
	for _, w := range want {
		require.NotZero(t, seen[w], "%s lost", w)
		if seen[w] > 1 {
			require.True(t, mayRepeat[w], "%s delivered %d times although acknowledged before the fault", w, seen[w])
		}
	}
	require.Len(t, seen, len(want), "unexpected payloads in %v", seen)
}

// receiveUntil receives (and acks) until every payload of want has been
// seen, returning everything received.
func receiveUntil(t *testing.T, cons pulsar.Consumer, want []string) []pulsar.Message {
	t.Helper()
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	var msgs []pulsar.Message
	for len(missing) > 0 {
		m, err := cons.Receive(timeout(t, receiveTimeout))
		require.NoError(t, err, "still missing %d messages", len(missing))
		require.NoError(t, cons.Ack(m))
		msgs = append(msgs, m)
		delete(missing, string(m.Payload()))
	}
	return msgs
}

// TestFaultDropConnections: when the broker drops every connection,
// producers and consumers reconnect by themselves and nothing is lost.
func TestFaultDropConnections(t *testing.T) {
	s := faultyBroker(t)
	c := newClient(t, s.ServiceURL())
	topic := newTopic(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Type: pulsar.Shared, AckWithResponse: true, BackOffPolicyFunc: steady})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BackOffPolicyFunc: steady})

	sendN(t, p, 0, 10)
	ackAll(t, cons, receiveN(t, cons, 5)) // acked with receipts: settled

	s.DropConnections()
	sendN(t, p, 10, 10)
	msgs := receiveUntil(t, cons, wantPayloads(5, 15))
	checkAtLeastOnce(t, msgs, wantPayloads(5, 15), map[string]bool{
		// delivered before the drop, unacknowledged: may come twice
		"msg-0005": true, "msg-0006": true, "msg-0007": true, "msg-0008": true, "msg-0009": true,
	})

	// Asynchronous sends in flight across a drop are re-sent by the
	// client; with deduplication off (the default) a message whose receipt
	// was lost may be stored twice, but none is lost.
	errs := make(chan error, 50)
	for i := range 50 {
		p.SendAsync(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: payload(100 + i)},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { errs <- err })
		if i == 25 {
			s.DropConnections()
		}
	}
	require.NoError(t, p.FlushWithCtx(timeout(t, opTimeout)))
	for range 50 {
		require.NoError(t, <-errs)
	}
	msgs = receiveUntil(t, cons, wantPayloads(100, 50))
	repeat := map[string]bool{}
	for _, w := range wantPayloads(100, 50) {
		repeat[w] = true
	}
	checkAtLeastOnce(t, msgs, wantPayloads(100, 50), repeat)
}

// TestFaultUnloadTopic: the broker closes a topic's producers and
// consumers (CLOSE_PRODUCER / CLOSE_CONSUMER, as when Pulsar unloads a
// topic); the client re-registers them and goes on, losing nothing and
// redelivering nothing that was acknowledged.
//
// Two behaviours of pulsar-client-go v0.19.0 around an unload shape this
// test; both were seen under -race with busy loops on both cores, and both
// happen against a real Pulsar too, whose broker answers as minipulsar does:
//
//   - A message sent while the producer re-registers can be written twice:
//     the send goroutine writes it on the new connection and grabCnx then
//     re-sends the pending queue, so two receipts carry one sequence id.
//     Broker deduplication drops the second copy, so it is on here.
//   - A SEND that crosses CLOSE_PRODUCER names a producer the broker no
//     longer has, and the broker closes the connection (Pulsar's ServerCnx
//     does the same). A consumer on that connection then reconnects twice
//     (CLOSE_CONSUMER, then the closed connection); the second SUBSCRIBE
//     finds it registered and succeeds without a new registration, while
//     the client clears its receive queue, so the messages that were in
//     the queue stay pending on the broker until the consumer reconnects
//     again. The producer and the consumer are on separate clients here,
//     as the sidecar keeps them (ADR 060), so a producer's connection
//     closing never touches the consumer.
func TestFaultUnloadTopic(t *testing.T) {
	s := faultyBrokerOptions(t, minipulsar.Options{Deduplication: true})
	cc := newClient(t, s.ServiceURL())
	pc := newClient(t, s.ServiceURL())
	topic := newTopic(t)
	cons := subscribe(t, cc, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", AckWithResponse: true, BackOffPolicyFunc: steady})
	p := newProducer(t, pc, pulsar.ProducerOptions{Topic: topic, BackOffPolicyFunc: steady})
	sendN(t, p, 0, 5)
	ackAll(t, cons, receiveN(t, cons, 5))

	for round := range 3 {
		require.NoError(t, s.UnloadTopic(topic))
		sendN(t, p, 5+round*5, 5)
		msgs := receiveUntil(t, cons, wantPayloads(5+round*5, 5))
		checkAtLeastOnce(t, msgs, wantPayloads(5+round*5, 5), nil)
	}
}

// TestFaultRefuseConnections: while the broker refuses connections the
// client keeps retrying; sends made meanwhile complete once it is back.
func TestFaultRefuseConnections(t *testing.T) {
	s := faultyBroker(t)
	c := newClient(t, s.ServiceURL())
	topic := newTopic(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", AckWithResponse: true, BackOffPolicyFunc: steady})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BackOffPolicyFunc: steady})
	sendN(t, p, 0, 1)
	ackAll(t, cons, receiveN(t, cons, 1))

	const refusal = time.Second
	s.RefuseConnections(refusal)
	s.DropConnections()
	start := time.Now()
	sendN(t, p, 1, 3)
	require.GreaterOrEqual(t, time.Since(start), refusal-100*time.Millisecond,
		"a send completed while the broker was refusing connections")
	msgs := receiveUntil(t, cons, wantPayloads(1, 3))
	checkAtLeastOnce(t, msgs, wantPayloads(1, 3), nil)
}

// TestFaultFailNextSends: a storage failure (SEND_ERROR PersistenceError)
// stores nothing; the client closes the connection, reconnects and re-sends,
// so a short run of failures only delays the send and the message is stored
// once, while failures that outlast SendTimeout reach the application.
func TestFaultFailNextSends(t *testing.T) {
	s := faultyBroker(t)
	c := newClient(t, s.ServiceURL())
	topic := newTopic(t)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, SendTimeout: time.Second, DisableBatching: true, BackOffPolicyFunc: steady})
	sendN(t, p, 0, 1)

	s.FailNextSends(2)
	sendN(t, p, 1, 1)

	s.FailNextSends(1 << 30)
	start := time.Now()
	_, err := p.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("refused")})
	require.Error(t, err, "failures that outlast SendTimeout must reach the application")
	require.Less(t, time.Since(start), 5*time.Second)
	// A fresh producer: pulsar-client-go v0.19.0 races (under -race) when a
	// producer sends while its reconnect goroutine re-registers it
	// (producer_partition.go grabCnx writes producerName and encryptor that
	// internalSingleSend reads), and the old one may still be reconnecting.
	// Closed while the broker still fails sends: a send that timed out in
	// the client may still be on its way (a re-send from the reconnect),
	// and would be stored if failures stopped first (8 runs in 150 beside
	// two busy loops did). Frames on a connection are handled in order, so
	// once CLOSE_PRODUCER is answered nothing of the old producer's lands.
	p.Close()
	s.FailNextSends(0)
	p2 := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	sendN(t, p2, 2, 2)

	// What the topic holds, read from the start: each message exactly once,
	// the refused one not at all.
	r, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(t, err)
	defer r.Close()
	var got []string
	for r.HasNext() {
		m, err := r.Next(timeout(t, opTimeout))
		require.NoError(t, err)
		got = append(got, string(m.Payload()))
	}
	require.Equal(t, wantPayloads(0, 4), got)
}

// TestFaultDelayNextSends: slow sends complete late but in order; a send
// that times out in the client may still be stored (at-least-once).
func TestFaultDelayNextSends(t *testing.T) {
	s := faultyBroker(t)
	c := newClient(t, s.ServiceURL())
	topic := newTopic(t)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub"})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})

	const d = 300 * time.Millisecond
	s.DelayNextSends(2, d)
	start := time.Now()
	ids := sendBatch(t, p, 0, 5)
	require.GreaterOrEqual(t, time.Since(start), 2*d-50*time.Millisecond, "two sends delayed by %s each", d)
	for i := 1; i < len(ids); i++ {
		require.True(t, before(ids[i-1], ids[i]), "receipts out of order")
	}
	require.Equal(t, wantPayloads(0, 5), payloads(receiveN(t, cons, 5)))

	slow := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true, SendTimeout: 500 * time.Millisecond})
	s.DelayNextSends(1, 2*time.Second)
	_, err := slow.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: []byte("late")})
	require.Error(t, err, "the client gives up after its send timeout")
	m := receive(t, cons)
	require.Equal(t, "late", string(m.Payload()), "the broker stored it anyway")
}

// TestFaultRefuseLookups: while lookups are refused no new producer can be
// created; once they are allowed again everything works.
func TestFaultRefuseLookups(t *testing.T) {
	s := faultyBroker(t)
	c := newClient(t, s.ServiceURL())
	topic := newTopic(t)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BackOffPolicyFunc: steady})
	sendN(t, p, 0, 1)

	s.RefuseLookups(true)
	// A separate client, so that its failures do not disturb c's
	// connection, with a short operation timeout to bound its retries.
	other := newClient(t, s.ServiceURL(), func(o *pulsar.ClientOptions) { o.OperationTimeout = 2 * time.Second })
	start := time.Now()
	_, err := other.CreateProducer(pulsar.ProducerOptions{Topic: newTopic(t)})
	require.Error(t, err, "CreateProducer while lookups are refused")
	require.Less(t, time.Since(start), 8*time.Second)

	s.RefuseLookups(false)
	newProducer(t, other, pulsar.ProducerOptions{Topic: topic})
	sendN(t, p, 1, 1)
	cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	require.Equal(t, wantPayloads(0, 2), payloads(receiveN(t, cons, 2)))
}

// TestFaultRestart: a broker restarted on the same ports keeps its topics,
// messages and subscription positions; connected clients reconnect.
func TestFaultRestart(t *testing.T) {
	s := faultyBroker(t)
	c := newClient(t, s.ServiceURL())
	topic := newTopic(t)
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", AckWithResponse: true, BackOffPolicyFunc: steady}
	cons := subscribe(t, c, opts)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BackOffPolicyFunc: steady})
	sendN(t, p, 0, 10)
	ackAll(t, cons, receiveN(t, cons, 5))

	serviceURL, adminURL := s.ServiceURL(), s.AdminURL()
	require.NoError(t, s.Restart())
	require.Equal(t, serviceURL, s.ServiceURL(), "same binary port after restart")
	require.Equal(t, adminURL, s.AdminURL(), "same admin port after restart")

	sendN(t, p, 10, 5)
	msgs := receiveUntil(t, cons, wantPayloads(5, 10))
	repeat := map[string]bool{}
	for _, w := range wantPayloads(5, 5) {
		repeat[w] = true
	}
	checkAtLeastOnce(t, msgs, wantPayloads(5, 10), repeat)

	// A fresh client sees the whole topic and the partitioned metadata.
	fresh := newClient(t, s.ServiceURL())
	r := newReader(t, fresh, pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	require.Equal(t, wantPayloads(0, 15), payloads(readAll(t, r)))
	admin := newAdmin(t, s.AdminURL())
	subs, err := admin.Subscriptions().List(adminTopic(t, topic))
	require.NoError(t, err)
	require.Contains(t, subs, "sub")
}
