package delay

import (
	"testing"

	"go.uber.org/goleak"
)

// Every engine, broker, redis-server and client is closed by t.Cleanup, so
// nothing may outlive the tests, with one known exception (the same as in
// proxy and app): in pulsar-client-go v0.19 a closed producer's
// failTimeoutMessages goroutine only notices the close when its timer next
// fires, up to SendTimeout later. It holds no resources and exits by
// itself.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).failTimeoutMessages"),
		// A producer closed while its reconnect loop waits between lookups (its
		// broker was down) keeps that loop in internal.Retry until the backoff
		// ends; it then sees the producer closed and exits (pulsar-client-go v0.19).
		goleak.IgnoreAnyFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).reconnectToBroker"),
	)
}
