//go:build !race

// The tests in this file stop brokers while many goroutines produce.
// pulsar-client-go v0.19.0 has a data race, which -race reports, when a
// producer sends while its reconnect goroutine re-registers it
// (producer_partition.go: grabCnx against internalSingleSend): exactly what
// killing a broker under load provokes. The race is in the client, not in
// this package, so these tests are built without -race only. The same paths
// run under -race in TestFailoverAndBack, TestSpoolAndReplay and
// TestReplayToDR, whose clusters are down from the start and come up later,
// so that no producer ever reconnects.

package durable

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// TestNoLossUnderLoad: 20 goroutines produce continuously through the
// Sender, with the defaults that decide failover (attempt timeout, breaker,
// probes). The primary broker is stopped mid-run, then the DR broker too,
// then both come back. Every message that got a durable answer must be on a
// cluster afterwards (uid sets compared); duplicates are allowed only as the
// same uid twice. The time from the primary going down to the first
// "failover" answer is measured (target: at most 2 s).
func TestNoLossUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a 15-second load test")
	}
	primary, dr := newBroker(t, minipulsar.Options{}), newBroker(t, minipulsar.Options{})
	pc, dc := connect(t, primary, "primary"), connect(t, dr, "dr")
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	s := start(t, Options{
		Primary:    Cluster{Name: "primary", Sender: pc.sender},
		DR:         &Cluster{Name: "dr", Sender: dc.sender},
		SpoolDir:   t.TempDir(),
		Logger:     testLogger(t),
		Recorder:   rec,
		Registerer: reg,
	})

	const senders = 20
	topics := []string{"persistent://pay/settle/a", "persistent://pay/settle/b", "persistent://pay/usage/c"}
	type answer struct {
		uid    string
		status produce.Status
		at     time.Time
		err    error
	}
	var (
		mu      sync.Mutex
		answers []answer
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for g := range senders {
		wg.Go(func() {
			for i := g; !stop.Load(); i += senders {
				m := newMessage(i, topics[i%len(topics)])
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				ch := make(chan result, 1)
				s.SendAsync(ctx, m, func(rc produce.Receipt, err error) { ch <- result{rc, err} })
				r := <-ch
				cancel()
				mu.Lock()
				answers = append(answers, answer{uid: m.UID, status: r.rc.Status, at: time.Now(), err: r.err})
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	phase := func(d time.Duration, what string, f func() error) time.Time {
		time.Sleep(d)
		require.NoError(t, f(), what)
		now := time.Now()
		t.Logf("%s at %d answers", what, func() int { mu.Lock(); defer mu.Unlock(); return len(answers) }())
		return now
	}
	primaryDown := phase(2*time.Second, "primary stopped", primary.Close)
	drDown := phase(3*time.Second, "DR stopped", dr.Close)
	bothUp := phase(3*time.Second, "both started", func() error {
		if err := primary.Start(); err != nil {
			return err
		}
		return dr.Start()
	})
	time.Sleep(4 * time.Second)
	stop.Store(true)
	wg.Wait()
	waitFor(t, 60*time.Second, "the spool to drain", func() bool { return s.Health().Spool.Depth == 0 })

	// What the clusters hold, by uid.
	onCluster := map[string]int{}
	for _, b := range []*minipulsar.Server{primary, dr} {
		for _, topic := range topics {
			for uid, n := range stored(t, b, topic) {
				onCluster[uid] += n
			}
		}
	}
	byStatus := map[produce.Status]int{}
	var lost, failed []string
	firstFailover, firstSpooled, firstBack := time.Time{}, time.Time{}, time.Time{}
	for _, a := range answers {
		if a.err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", a.uid, a.err))
			continue
		}
		byStatus[a.status]++
		if onCluster[a.uid] == 0 {
			lost = append(lost, a.uid)
		}
		switch {
		case a.status == produce.StatusFailover && a.at.After(primaryDown) && (firstFailover.IsZero() || a.at.Before(firstFailover)):
			firstFailover = a.at
		case a.status == produce.StatusSpooled && a.at.After(drDown) && (firstSpooled.IsZero() || a.at.Before(firstSpooled)):
			firstSpooled = a.at
		case a.status == produce.StatusPersisted && a.at.After(bothUp) && (firstBack.IsZero() || a.at.Before(firstBack)):
			firstBack = a.at
		}
	}
	dups := 0
	for _, n := range onCluster {
		if n > 1 {
			dups += n - 1
		}
	}
	require.NotZero(t, firstFailover, "no failover answer after the primary stopped")
	failoverTime := firstFailover.Sub(primaryDown)
	t.Logf("%d answers: %v; %d errors; %d distinct uids on the clusters, %d duplicate copies (same uid)",
		len(answers), byStatus, len(failed), len(onCluster), dups)
	t.Logf("primary down -> first failover answer: %v; DR down -> first spooled answer: %v; both up -> first persisted answer: %v",
		failoverTime.Round(time.Millisecond), firstSpooled.Sub(drDown).Round(time.Millisecond), firstBack.Sub(bothUp).Round(time.Millisecond))
	t.Logf("replayed: %d, late acks: primary %.0f dr %.0f, retries %.0f",
		len(rec.of(tracer.Replayed)),
		metricValue(t, reg, "psc_late_acks_total", map[string]string{"cluster": "primary"}),
		metricValue(t, reg, "psc_late_acks_total", map[string]string{"cluster": "dr"}),
		metricValue(t, reg, "psc_produce_retries_total", nil))

	require.Empty(t, lost, "acknowledged messages missing from both clusters")
	assert.Empty(t, failed, "messages not made durable")
	assert.Greater(t, len(answers), 2000, "thousands of messages")
	for _, st := range []produce.Status{produce.StatusPersisted, produce.StatusFailover, produce.StatusSpooled} {
		assert.Positive(t, byStatus[st], "no %s answers", st)
	}
	assert.NotZero(t, firstSpooled, "nothing spooled while both clusters were down")
	assert.NotZero(t, firstBack, "traffic never returned to the primary")
	assert.LessOrEqual(t, failoverTime, 2*time.Second, "failover time")
}
