package app

import (
	"testing"

	"go.uber.org/goleak"
)

// Every app, broker, redis-server and client is closed by t.Cleanup, so
// nothing may outlive the tests, with one known exception: in
// pulsar-client-go v0.19 a closed producer's failTimeoutMessages goroutine
// only notices the close when its timer next fires, up to SendTimeout (the
// sidecar's http.requestTimeout) later. It holds no resources and exits by
// itself. A second one: a producer closed while its reconnect loop waits
// between lookups (the broker was down, as in the durability tests) leaves
// that loop in internal.Retry until its backoff timer fires; it then sees
// the producer closed and ends. A third: a consumer that reconnects (a
// topic unloaded, a broker back) starts a goroutine that tells its
// dispatcher it is connected (grabConn's `connectedCh <- struct{}{}`); when
// the consumer is closed before the dispatcher reads it, that goroutine
// blocks for good (seen once in four runs of this package). It holds one
// small channel send and nothing of ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).failTimeoutMessages"),
		goleak.IgnoreAnyFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).reconnectToBroker"),
		goleak.IgnoreAnyFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionConsumer).grabConn.func1"))
}
