package durable

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the crash child when re-executed by TestSIGKILLWhileSpooling,
// and otherwise checks that no goroutine outlives the tests. One known
// exception, as in proxy and app: in pulsar-client-go v0.19 a
// closed producer's failTimeoutMessages goroutine notices the close only
// when its timer next fires (up to the pool's SendTimeout later); it holds
// nothing and exits by itself.
func TestMain(m *testing.M) {
	if url := os.Getenv(crashChildEnv); url != "" {
		os.Exit(runCrashChild(url, os.Getenv(crashDirEnv)))
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).failTimeoutMessages"),
		// A producer closed while its reconnect loop waits between lookups (its
		// broker was down) keeps that loop in internal.Retry until the backoff
		// ends; it then sees the producer closed and exits (pulsar-client-go v0.19).
		goleak.IgnoreAnyFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).reconnectToBroker"),
	)
}
