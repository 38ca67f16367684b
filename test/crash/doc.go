// Package crash is the crash harness of issue 12: it checks the product's
// first promise, "an acknowledged message is never lost, and a retried
// request never bills twice", against real processes killed with SIGKILL.
//
// TestCrash builds ./cmd/minipulsar and ./cmd/pulsar-sidecar and runs
//
//   - a redis-server with AOF (appendonly yes, appendfsync always),
//   - minipulsar as a child process with --data-dir,
//   - the sidecar as a child process against both (same ports and data
//     directory across restarts, so its spool replays after a crash), with
//     its defaults except the delay levels and the trace store, which are
//     off (they take CPU and play no part in produce),
//   - N HTTP producers, each sending one keyed message per request and
//     retrying a key (same key, same payload) until it is answered 2xx;
//     every 2xx answer (key, uid) goes to a log that is fsynced before the
//     producer moves on (group commit),
//
// kills the sidecar with SIGKILL at random points several times and the
// broker once, restarting each, then reads every topic with a native
// pulsar-client-go consumer and asserts: no acknowledged key missing, no key
// under two uids, every copy of a key carrying the uid its 2xx answered.
//
// The short mode (60 s) runs with the normal test suite; it is skipped only
// when redis-server is not installed, or under -short. The long mode:
//
//	go test ./test/crash/ -run TestCrash -crash.duration=10m -timeout 30m
//	PSC_CRASH_DURATION=10m go test ./test/crash/ -run TestCrash -timeout 30m
//
// Other knobs: -crash.producers, -crash.kills, -crash.seed, -crash.keep
// (keep the run's directory: logs, AOF, data).
package crash
