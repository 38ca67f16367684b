package consume

import (
	"testing"

	"go.uber.org/goleak"
)

// Every broker, client, Service and HTTP server is closed by t.Cleanup,
// so nothing may outlive the tests, with one known exception: in
// pulsar-client-go v0.19 a closed producer's failTimeoutMessages goroutine
// only notices the close when its timer next fires, up to SendTimeout
// later (the tests' producers and the dead-letter producers). It holds no
// resources and exits by itself.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).failTimeoutMessages"))
}
