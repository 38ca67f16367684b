// Package conformance is the contract suite for minipulsar: every test talks
// to a broker only through the unmodified github.com/apache/pulsar-client-go
// client (package pulsar) and its admin client (package pulsaradmin), never
// through broker internals, so the same tests can judge minipulsar and a real
// Apache Pulsar alike.
//
// By default each test starts its own in-process minipulsar on loopback
// ports:
//
//	go test -race -count=1 ./minipulsar/conformance/
//
// To check fidelity against a real Pulsar (a standalone container is
// enough), give its binary service URL and its admin URL:
//
//	PULSAR_SERVICE_URL=pulsar://host:6650 PULSAR_ADMIN_URL=http://host:8080 \
//	    go test -count=1 ./minipulsar/conformance/
//
// Against a real broker every test uses its own topics under public/default
// (persistent://public/default/conf-<test>-<random>), so a shared cluster is
// fine; topic-level policies (deduplication) are set only on those topics.
// TestNamespacesMustExist creates (and deletes) a tenant conf-<random> with
// one namespace. minipulsar runs with Options.Namespaces = RequireNamespaces,
// as Pulsar behaves. TestBrokerKeepAlive waits 75 s against a real Pulsar
// and runs there only with PULSAR_CONFORMANCE_SLOW=1.
// The tests in faults_test.go need fault injection from the broker and are
// skipped against a real Pulsar. A real broker needs the defaults of a
// recent standalone: topic-level policies enabled (for the deduplication
// test), delayed delivery enabled, and batch-index acknowledgement enabled
// (acknowledgmentAtBatchIndexLevelEnabled=true) for the batch-index ack test.
//
// Set PULSAR_CONFORMANCE_LOG=debug (or info, warn, error) to see the
// client's own logs on stderr; they are discarded otherwise.
package conformance
