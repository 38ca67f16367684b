package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// answerTimeout is how long a broker may take to answer a request it does
// not support. The client would otherwise wait OperationTimeout (30 s by
// default) for a request left unanswered.
const answerTimeout = 5 * time.Second

// within runs f and fails the test if it has not returned after d. f gets a
// context that expires at d. It waits for f to return before going on, so
// nothing f started outlives the test.
func within(t *testing.T, d time.Duration, what string, f func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t.Errorf("%s: no answer within %s: the broker left a request hanging", what, d)
		err := <-done
		t.Logf("%s returned after %s: %v", what, time.Since(start), err)
		return err
	}
}

// TestTransactionsRefusedFast: minipulsar has no transaction coordinator.
// A client that enables transactions must be told so at once with an
// error, not left waiting for the operation timeout. Against a real Pulsar
// the client only has to get an answer in time (transactions may well be
// enabled there).
func TestTransactionsRefusedFast(t *testing.T) {
	serviceURL, _ := target(t)
	err := within(t, answerTimeout, "NewClient with EnableTransaction", func(context.Context) error {
		c, err := pulsar.NewClient(pulsar.ClientOptions{
			URL:               serviceURL,
			EnableTransaction: true,
			OperationTimeout:  30 * time.Second, // the default: a hang would show
			Logger:            clientLogger(),
			MetricsRegisterer: prometheus.NewRegistry(),
		})
		if err == nil {
			c.Close()
		} else {
			failedClients.Add(1) // see idleChecker in main_test.go
		}
		return err
	})
	if !realPulsar() {
		require.Error(t, err, "transactions are not supported by minipulsar: NewClient must fail")
	}

	// Without transactions enabled, NewTransaction fails in the client.
	c := newClient(t, serviceURL)
	_, err = c.NewTransaction(time.Minute)
	require.ErrorIs(t, err, pulsar.ErrClientTransactionsNotEnabled)
}

// TestNoRequestLeftHanging: requests for features minipulsar may not
// support (schemas, namespace topic listing for pattern subscriptions)
// get an answer, success or error, in time.
func TestNoRequestLeftHanging(t *testing.T) {
	serviceURL, _ := target(t)
	c := newClient(t, serviceURL)

	t.Run("producer with a schema", func(t *testing.T) {
		topic := newTopic(t)
		_ = within(t, answerTimeout, "CreateProducer+Send with a string schema", func(ctx context.Context) error {
			p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewStringSchema(nil), SendTimeout: answerTimeout})
			if err != nil {
				return err
			}
			defer p.Close()
			_, err = p.Send(ctx, &pulsar.ProducerMessage{Value: "typed"})
			return err
		})
	})

	t.Run("consumer with a schema", func(t *testing.T) {
		topic := newTopic(t)
		_ = within(t, answerTimeout, "Subscribe with a string schema", func(context.Context) error {
			cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "sub", Schema: pulsar.NewStringSchema(nil)})
			if err != nil {
				return err
			}
			cons.Close()
			return nil
		})
	})

	t.Run("pattern subscription", func(t *testing.T) {
		prefix := "persistent://public/default/" + uniqueName(t)
		err := within(t, answerTimeout, "Subscribe with TopicsPattern", func(context.Context) error {
			cons, err := c.Subscribe(pulsar.ConsumerOptions{TopicsPattern: prefix + "-.*", SubscriptionName: "sub"})
			if err != nil {
				return err
			}
			cons.Close()
			return nil
		})
		if err != nil {
			t.Logf("pattern subscription refused: %v", err)
		}
	})
}
