package proxy

import (
	"testing"

	"go.uber.org/goleak"
)

// See internal/app's TestMain for why failTimeoutMessages is ignored: a
// closed pulsar-client-go v0.19 producer's timeout goroutine ends only when
// its timer next fires.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).failTimeoutMessages"))
}
