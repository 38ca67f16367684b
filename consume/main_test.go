package consume

import (
	"testing"

	"go.uber.org/goleak"
)

// Every broker, client, Service and HTTP server is closed by t.Cleanup,
// so nothing may outlive the tests, with two known exceptions in
// pulsar-client-go v0.19, both goroutines that hold nothing:
//
//   - a closed producer's failTimeoutMessages goroutine notices the close
//     only when its timer next fires, up to SendTimeout later (the tests'
//     producers and the dead-letter producers);
//   - a consumer closed right after it subscribed (registration creates
//     the Pulsar subscription with a consumer it closes at once) can leave
//     grabConn's "go func() { pc.connectedCh <- struct{}{} }()" blocked for
//     ever, when the dispatcher saw closeCh before connectedCh
//     (pulsar/consumer_partition.go). It happens about once in a few
//     hundred such consumers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).failTimeoutMessages"),
		// A producer closed while its reconnect loop waits between lookups (its
		// broker was down) keeps that loop in internal.Retry until the backoff
		// ends; it then sees the producer closed and exits (pulsar-client-go v0.19).
		goleak.IgnoreAnyFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).reconnectToBroker"),
		goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionConsumer).grabConn.func1"))
}
