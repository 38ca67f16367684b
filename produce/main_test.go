package produce

import (
	"testing"

	"go.uber.org/goleak"
)

// See app's TestMain for why failTimeoutMessages is ignored: a
// closed pulsar-client-go v0.19 producer's timeout goroutine ends only when
// its timer next fires.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).failTimeoutMessages"),
		// A producer closed while its reconnect loop waits between lookups (its
		// broker was down) keeps that loop in internal.Retry until the backoff
		// ends; it then sees the producer closed and exits (pulsar-client-go v0.19).
		goleak.IgnoreAnyFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).reconnectToBroker"),
	)
}
