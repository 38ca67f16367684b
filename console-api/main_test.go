package consoleapi

import (
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"
)

// Every broker, client, store and server is closed by t.Cleanup, so
// nothing may outlive the tests, with one known exception: in
// pulsar-client-go v0.19 a closed producer's failTimeoutMessages goroutine
// notices the close only when its timer next fires (up to SendTimeout
// later). It holds nothing and exits by itself.
func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).failTimeoutMessages"),
		// A producer closed while its reconnect loop waits between lookups (its
		// broker was down) keeps that loop in internal.Retry until the backoff
		// ends; it then sees the producer closed and exits (pulsar-client-go v0.19).
		goleak.IgnoreAnyFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).reconnectToBroker"),
	)
}
