package conformance

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

// TestExclusiveSubscription: a second consumer on an Exclusive subscription
// is refused with ConsumerBusy; other subscriptions are independent.
func TestExclusiveSubscription(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)

	first := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "excl", Type: pulsar.Exclusive})
	_, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "excl", Type: pulsar.Exclusive})
	require.ErrorContains(t, err, "ConsumerBusy")
	_, err = c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "excl", Type: pulsar.Shared})
	require.Error(t, err, "a Shared consumer on an Exclusive subscription")

	other := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "other", Type: pulsar.Exclusive})
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	sendN(t, p, 0, 5)
	require.Equal(t, wantPayloads(0, 5), payloads(receiveN(t, first, 5)))
	require.Equal(t, wantPayloads(0, 5), payloads(receiveN(t, other, 5)), "every subscription gets every message")

	// Once the owner leaves, the subscription is free again.
	first.Close()
	subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "excl", Type: pulsar.Exclusive})
}

// collect receives from every consumer concurrently until total messages
// have arrived (or the timeout passes) and returns what each one got.
func collect(t *testing.T, total int, consumers ...pulsar.Consumer) [][]pulsar.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), receiveTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		got = make([][]pulsar.Message, len(consumers))
		n   int
		wg  sync.WaitGroup
	)
	for i, cons := range consumers {
		wg.Go(func() {
			for {
				msg, err := cons.Receive(ctx)
				if err != nil {
					return
				}
				_ = cons.Ack(msg)
				mu.Lock()
				got[i] = append(got[i], msg)
				n++
				if n == total {
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Equal(t, total, n, "messages received by all consumers together")
	return got
}

// TestSharedSubscription: two consumers share the messages; together they
// get every message exactly once.
func TestSharedSubscription(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "shared", Type: pulsar.Shared, ReceiverQueueSize: 10}
	c1 := subscribe(t, c, opts)
	c2 := subscribe(t, c, opts)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})

	const n = 100
	sendBatch(t, p, 0, n)
	got := collect(t, n, c1, c2)
	require.NotEmpty(t, got[0], "first consumer got nothing")
	require.NotEmpty(t, got[1], "second consumer got nothing")
	require.ElementsMatch(t, wantPayloads(0, n), append(payloads(got[0]), payloads(got[1])...))
}

// TestFailoverSubscription: only the active consumer receives; when it
// leaves, the other takes over from the first unacknowledged message.
func TestFailoverSubscription(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "failover", Type: pulsar.Failover}
	opts.Name = "consumer-a"
	a := subscribe(t, c, opts)
	opts.Name = "consumer-b"
	b := subscribe(t, c, opts)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})

	sendN(t, p, 0, 20)
	// Which consumer is active is the broker's choice; exactly one gets
	// the messages.
	var first pulsar.Message
	active, standby := a, b
	select {
	case cm := <-a.Chan():
		first = cm.Message
	case cm := <-b.Chan():
		first = cm.Message
		active, standby = b, a
	case <-time.After(receiveTimeout):
		t.Fatal("no consumer received anything")
	}
	rest := receiveN(t, active, 9)
	msgs := append([]pulsar.Message{first}, rest...)
	require.Equal(t, wantPayloads(0, 10), payloads(msgs), "the active consumer gets the messages in order")
	ackAll(t, active, msgs)
	expectNothing(t, standby)

	// The active consumer leaves with messages 10..19 unacknowledged.
	active.Close()
	sendN(t, p, 20, 5)
	got := receiveN(t, standby, 15)
	require.Equal(t, wantPayloads(10, 15), payloads(got), "the standby takes over without loss, in order")
	require.NoError(t, standby.AckCumulative(got[len(got)-1]))
}

// TestFailoverActiveConsumerEvents: the broker tells consumers which one is
// active (ACTIVE_CONSUMER_CHANGE), and tells the standby when it becomes
// active.
func TestFailoverActiveConsumerEvents(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	la, lb := newActivity(), newActivity()
	a := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "failover", Type: pulsar.Failover, Name: "a", EventListener: la})
	b := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "failover", Type: pulsar.Failover, Name: "b", EventListener: lb})

	var active pulsar.Consumer
	var standby *activity
	eventually(t, receiveTimeout, func() error {
		switch {
		case la.isActive() && !lb.isActive():
			active, standby = a, lb
		case lb.isActive() && !la.isActive():
			active, standby = b, la
		default:
			return fmt.Errorf("active: a=%v b=%v; want exactly one", la.isActive(), lb.isActive())
		}
		return nil
	})
	active.Close()
	eventually(t, receiveTimeout, func() error {
		if !standby.isActive() {
			return fmt.Errorf("standby was not told it became active")
		}
		return nil
	})
}

// activity records ConsumerEventListener calls.
type activity struct {
	mu     sync.Mutex
	active bool
}

func newActivity() *activity { return &activity{} }

func (a *activity) BecameActive(pulsar.Consumer, string, int32) {
	a.mu.Lock()
	a.active = true
	a.mu.Unlock()
}

func (a *activity) BecameInactive(pulsar.Consumer, string, int32) {
	a.mu.Lock()
	a.active = false
	a.mu.Unlock()
}

func (a *activity) isActive() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.active
}

// TestKeySharedSubscription: every key goes to one consumer only; together
// the consumers get every message, in order per key.
func TestKeySharedSubscription(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "keyshared", Type: pulsar.KeyShared}
	c1 := subscribe(t, c, opts)
	c2 := subscribe(t, c, opts)
	// Key-based batching keeps one key per entry, as Key_Shared needs.
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, BatcherBuilderType: pulsar.KeyBasedBatchBuilder})

	const n, keys = 300, 50
	errs := make(chan error, n)
	for i := range n {
		p.SendAsync(timeout(t, opTimeout), &pulsar.ProducerMessage{Payload: payload(i), Key: fmt.Sprintf("k%d", i%keys)},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) { errs <- err })
	}
	require.NoError(t, p.FlushWithCtx(timeout(t, opTimeout)))
	for range n {
		require.NoError(t, <-errs)
	}

	got := collect(t, n, c1, c2)
	require.NotEmpty(t, got[0], "first consumer got no key")
	require.NotEmpty(t, got[1], "second consumer got no key")
	owner := map[string]int{}
	last := map[string]string{}
	for i, msgs := range got {
		for _, m := range msgs {
			if o, ok := owner[m.Key()]; ok && o != i {
				t.Fatalf("key %s delivered to both consumers", m.Key())
			}
			owner[m.Key()] = i
			require.Less(t, last[m.Key()], string(m.Payload()), "order of key %s", m.Key())
			last[m.Key()] = string(m.Payload())
		}
	}
	require.ElementsMatch(t, wantPayloads(0, n), append(payloads(got[0]), payloads(got[1])...))

	// The ordering key, when set, decides instead of the key.
	t.Run("ordering key", func(t *testing.T) {
		unbatched := newProducer(t, c, pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
		const m = 40
		for i := range m {
			_, err := unbatched.Send(timeout(t, opTimeout), &pulsar.ProducerMessage{
				Payload:     payload(i),
				Key:         fmt.Sprintf("k%d", i), // all different
				OrderingKey: "one-ordering-key",
			})
			require.NoError(t, err)
		}
		got := collect(t, m, c1, c2)
		require.True(t, len(got[0]) == 0 || len(got[1]) == 0,
			"one ordering key went to both consumers (%d and %d messages)", len(got[0]), len(got[1]))
	})
}

// TestFlowControl: a consumer with a receiver queue of 5 still receives
// 1000 messages, batched (entries bigger than its permits) or not.
func TestFlowControl(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	for _, tc := range []struct {
		name    string
		batched bool
		n       int
	}{
		{"batched", true, 1000},
		{"unbatched", false, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := newTopic(t)
			cons := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", ReceiverQueueSize: 5})
			p := newProducer(t, c, pulsar.ProducerOptions{
				Topic:                   topic,
				DisableBatching:         !tc.batched,
				BatchingMaxMessages:     100,
				BatchingMaxPublishDelay: time.Second, // batches close at 100 messages
			})
			ids := sendBatch(t, p, 0, tc.n)
			if tc.batched {
				require.Equal(t, int32(100), ids[0].BatchSize(), "the producer sends 100-message batches")
			}
			msgs := receiveN(t, cons, tc.n)
			require.Equal(t, wantPayloads(0, tc.n), payloads(msgs))
			ackAll(t, cons, msgs)
		})
	}
}

// TestInitialPosition: a new subscription starts at the end (Latest, the
// default) or at the beginning (Earliest); an existing one resumes where it
// was, whatever the option says.
func TestInitialPosition(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	sendN(t, p, 0, 5)

	latest := subscribe(t, c, pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "latest"})
	earliest := subscribe(t, c, pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            "earliest",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	sendN(t, p, 5, 5)
	require.Equal(t, wantPayloads(5, 5), payloads(receiveN(t, latest, 5)))
	expectNothing(t, latest)
	require.Equal(t, wantPayloads(0, 10), payloads(receiveN(t, earliest, 10)))

	// Resubscribing to "latest" with Earliest does not rewind it: the
	// subscription exists and keeps its position (nothing was acked, so
	// it redelivers from message 5).
	latest.Close()
	again := subscribe(t, c, pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            "latest",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	require.Equal(t, wantPayloads(5, 5), payloads(receiveN(t, again, 5)))
}

// TestNonDurableSubscription: a non-durable subscription reads like a
// durable one while connected, and is gone once its consumer leaves.
func TestNonDurableSubscription(t *testing.T) {
	serviceURL, adminURL := target(t)
	admin := newAdmin(t, adminURL)
	c := newClient(t, serviceURL)
	topic := newTopic(t)
	p := newProducer(t, c, pulsar.ProducerOptions{Topic: topic})
	sendN(t, p, 0, 5)

	opts := pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            "nondurable",
		SubscriptionMode:            pulsar.NonDurable,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	}
	cons, err := c.Subscribe(opts)
	require.NoError(t, err)
	msgs := receiveN(t, cons, 5)
	require.Equal(t, wantPayloads(0, 5), payloads(msgs))
	ackAll(t, cons, msgs[:3])
	cons.Close()

	eventually(t, 5*time.Second, func() error {
		subs, err := admin.Subscriptions().List(adminTopic(t, topic))
		if err == nil && len(subs) != 0 {
			err = fmt.Errorf("subscriptions %v remain after the non-durable consumer left", subs)
		}
		return err
	})

	// Subscribing again under the same name starts afresh: from Latest,
	// it sees only new messages (the acks above are forgotten).
	opts.SubscriptionInitialPosition = pulsar.SubscriptionPositionLatest
	again := subscribe(t, c, opts)
	sendN(t, p, 5, 2)
	require.Equal(t, wantPayloads(5, 2), payloads(receiveN(t, again, 2)))
	expectNothing(t, again)
}
