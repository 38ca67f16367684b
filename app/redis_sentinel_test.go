package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
)

// acked is one keyed produce the sidecar answered 200.
type acked struct {
	key, body string
	uid       string
	risk      bool // duplicateRisk: produced while Redis did not answer
	at        time.Time
}

// TestRedisSentinelFailover: a sidecar on Redis Sentinel (one master, one
// replica, three sentinels) under keyed produce load; the master is killed
// and the sidecar follows the replica the sentinels promote.
//
// Replication is asynchronous, so the test makes the lag visible: just
// before the kill it stops the replica (SIGSTOP) and cuts its link on the
// master (CLIENT KILL TYPE replica), so the replica cannot reconnect before
// the master dies lagWindow later,
// so every idempotency record written in that window exists only on the
// master that dies. That is what replication lag costs: those records are
// gone after the failover, and a client's retry of such a request produces
// the message again. It asserts:
//   - nothing acknowledged is lost: every uid answered 200 is on the broker;
//   - the sidecar follows: produce answers without duplicateRisk again
//     after the promotion, and /readyz is 200;
//   - a retry of every acknowledged request either answers the stored
//     result (duplicate) or, where the record died with the master,
//     produces a second copy with the same uid, so consumers that drop
//     copies by uid (the consume API does) still bill once;
//   - every wheel message (deliverAfter) answered scheduled before the cut
//     is delivered, at most twice under one uid; those scheduled in the
//     cut window, whose only copy was the dead master's index, are counted
//     as lost (the cost ADR 090 states).
func TestRedisSentinelFailover(t *testing.T) {
	// The sentinels want a password here, read from a file.
	t.Run("kill", func(t *testing.T) { sentinelFailover(t, 0, "sentinel-pw", 0) })
	t.Run("kill after a replication cut", func(t *testing.T) { sentinelFailover(t, 300*time.Millisecond, "", 0) })
	// With redis.waitReplicas a wheel message is answered only once the
	// replica has it: none is lost, those scheduled in the cut are refused
	// (503 DELAY_NOT_REPLICATED, not acknowledged) instead.
	t.Run("kill after a replication cut, waitReplicas", func(t *testing.T) { sentinelFailover(t, 300*time.Millisecond, "", 1) })
}

// sentinelFailover runs the failover; with lagWindow 0 the master is
// killed without a cut, and the replica loses what it had not received
// yet in the natural course of asynchronous replication.
func sentinelFailover(t *testing.T, lagWindow time.Duration, sentinelPassword string, waitReplicas int) {
	ss := testredis.StartSentinelWith(t, testredis.SentinelOptions{Replicas: 1, Sentinels: 3, DownAfter: time.Second,
		Password: sentinelPassword})
	h := startOn(t, func(t testing.TB, cfg *config.Config) {
		cfg.Redis.Addr = ""
		cfg.Redis.Addrs = strings.Join(ss.SentinelAddrs(), ",")
		cfg.Redis.MasterName = ss.MasterName
		if sentinelPassword != "" {
			cfg.Redis.SentinelPasswordFile = secretFile(t, sentinelPassword)
		}
		cfg.Redis.WaitReplicas, cfg.Redis.WaitTimeout = waitReplicas, 200*time.Millisecond
	}, nil)
	path, full := newTopic(t)

	var (
		mu      sync.Mutex
		done    []acked
		failed  atomic.Int64 // non-200 answers: not acknowledged, the client would retry
		stop    = make(chan struct{})
		workers sync.WaitGroup
	)
	for w := range 8 {
		workers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("fo-%d-%d", w, i)
				body := `{"messages":[{"payload":"charge ` + key + `","key":"acct-` + key + `","idempotencyKey":"` + key + `"}]}`
				status, res, err := postJSON(h, path, body)
				if err != nil || status != http.StatusOK || len(res.Results) != 1 {
					failed.Add(1)
					continue
				}
				mu.Lock()
				done = append(done, acked{key: key, body: body, uid: res.Results[0].UID, risk: res.Results[0].DuplicateRisk, at: time.Now()})
				mu.Unlock()
			}
		})
	}
	// One more producer schedules wheel messages (deliverAfter) on a topic
	// of their own: Redis is their only copy until they fall due.
	schedPath, schedFull := newTopic(t)
	var scheduled []acked
	workers.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			status, res, err := postJSON(h, schedPath, fmt.Sprintf(`{"messages":[{"payload":"due-%d","deliverAfter":"2s"}]}`, i))
			if err != nil || status != http.StatusOK || len(res.Results) != 1 || res.Results[0].Status != produce.StatusScheduled {
				failed.Add(1)
				continue
			}
			mu.Lock()
			scheduled = append(scheduled, acked{uid: res.Results[0].UID, at: time.Now()})
			mu.Unlock()
		}
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(done) }
	require.Eventually(t, func() bool { return count() >= 200 }, 20*time.Second, 10*time.Millisecond, "load is flowing")

	// Cut replication, let the master take writes alone for lagWindow, kill it.
	replica := ss.Replicas[0]
	ctx := t.Context()
	cutAt := time.Now()
	if lagWindow > 0 {
		replica.Pause()
		killed, err := ss.Master.Client().Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Int()
		require.NoError(t, err)
		require.Equal(t, 1, killed, "the replication link is cut")
		cutAt = time.Now()
		time.Sleep(lagWindow) // the replication lag being simulated
	}
	ss.Master.Stop()
	killedAt := time.Now()
	if lagWindow > 0 {
		replica.Resume()
	}

	require.Eventually(t, func() bool {
		addr, err := ss.MasterAddr(ctx)
		return err == nil && addr == replica.Addr()
	}, 30*time.Second, 50*time.Millisecond, "the sentinels promote the replica")
	promotedAt := time.Now()
	// The sidecar follows: fresh answers come without duplicateRisk.
	var followedAt time.Time
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		// The last 50 answers, all after the promotion, none with duplicateRisk.
		for i := len(done) - 1; n < 50 && i >= 0 && done[i].at.After(promotedAt); i-- {
			if done[i].risk {
				return false
			}
			n++
		}
		if n >= 50 {
			followedAt = done[len(done)-50].at
			return true
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "produce uses the promoted master")
	close(stop)
	workers.Wait()
	// /readyz dials afresh: a sentinel that has not heard of the promotion
	// yet (they learn it from each other within seconds) still names the
	// dead master, so readiness may lag the produce path a little.
	var lastReady string
	require.Eventually(t, func() bool {
		r := h.do(http.MethodGet, "/readyz", nil, nil)
		lastReady = r.Raw
		return r.Status == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "ready again; last answer %s", lastReady)
	readyAt := time.Now()

	// Nothing acknowledged is lost: every uid answered 200 is on the broker.
	onBroker := map[string]int{}
	for _, m := range h.readAll(full) {
		onBroker[m.Properties()[produce.PropUID]]++
	}
	var risky, inWindow int
	for _, a := range done {
		require.Equal(t, 1, onBroker[a.uid], "acknowledged %s (uid %s) is on the broker once", a.key, a.uid)
		if a.risk {
			risky++
		}
		if a.at.After(cutAt) && !a.at.After(killedAt) && !a.risk {
			inWindow++
		}
	}

	// A retry of every acknowledged request, now that the replica is master.
	var dup, again int
	var againByRisk int
	for _, a := range done {
		status, res, err := postJSON(h, path, a.body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status, a.key)
		r := res.Results[0]
		assert.Equal(t, a.uid, r.UID, "%s: a retry carries the first uid whether or not the record survived", a.key)
		if r.Duplicate {
			dup++
			continue
		}
		again++
		if a.risk {
			againByRisk++ // no record was ever written: Redis did not answer
		}
	}
	onBroker = map[string]int{}
	for _, m := range h.readAll(full) {
		onBroker[m.Properties()[produce.PropUID]]++
	}
	copies := 0
	for _, n := range onBroker {
		require.LessOrEqual(t, n, 2)
		if n == 2 {
			copies++
		}
	}
	lost := again - againByRisk

	// The wheel: every message scheduled before the cut is delivered; what
	// was scheduled after it may have died with the master. A message whose
	// claim or forward was cut off by the failover comes back when its
	// claim's lease ends (30 s) or the next sweep finds it due (5 s), so
	// the test waits for those before counting.
	lastDue := scheduled[len(scheduled)-1].at.Add(2 * time.Second)
	time.Sleep(time.Until(lastDue) + 2*time.Second) // the wheel's one-second precision, and the forward
	delivered := map[string]int{}
	readDelivered := func() {
		delivered = map[string]int{}
		for _, m := range h.readAll(schedFull) {
			delivered[m.Properties()[produce.PropUID]]++
		}
	}
	missingBeforeCut := func() int {
		n := 0
		for _, a := range scheduled {
			if !a.at.After(cutAt) && delivered[a.uid] == 0 {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(45 * time.Second); ; {
		readDelivered()
		if missingBeforeCut() == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second) // the wheel's lease and sweep, not test timing
	}
	wheelDone := time.Now()
	time.Sleep(6 * time.Second) // one more sweep for what was scheduled after the cut
	readDelivered()
	var wheelLost, wheelAfterCut, wheelTwice int
	for _, a := range scheduled {
		if a.at.After(cutAt) {
			wheelAfterCut++
		}
		switch n := delivered[a.uid]; {
		case n == 0:
			wheelLost++
			assert.True(t, a.at.After(cutAt), "a wheel message scheduled %s before the cut (%s) was lost", cutAt.Sub(a.at), a.uid)
		case n == 2:
			wheelTwice++
		case n > 2:
			t.Errorf("wheel message %s forwarded %d times", a.uid, n)
		}
	}
	t.Logf("acknowledged %d (failed answers, retried by a client: %d); %d with duplicateRisk while the master was unreachable; "+
		"%d acknowledged without risk in the %s replication cut before the kill; promotion %s after the kill, "+
		"sidecar on the new master %s after the kill, /readyz 200 %s after it (checked from the end of the load); retries: %d answered from the record, %d produced again "+
		"(%d records lost with the master, %d never written), %d uids on the broker twice, every copy under its first uid",
		len(done), failed.Load(), risky, inWindow, lagWindow, promotedAt.Sub(killedAt).Round(10*time.Millisecond),
		followedAt.Sub(killedAt).Round(10*time.Millisecond), readyAt.Sub(killedAt).Round(10*time.Millisecond), dup, again, lost, againByRisk, copies)
	t.Logf("wheel: %d messages answered scheduled, %d of them after the cut (or, without one, after the kill); %d never delivered, "+
		"%d delivered twice (same uid); the last one scheduled before the cut arrived %s after the kill",
		len(scheduled), wheelAfterCut, wheelLost, wheelTwice, wheelDone.Sub(killedAt).Round(100*time.Millisecond))
	if waitReplicas > 0 {
		assert.Zero(t, wheelLost, "with redis.waitReplicas no acknowledged wheel message is lost")
	}
	assert.Equal(t, again, copies, "each retry that produced again made exactly one second copy")
	if lagWindow > 0 {
		assert.Positive(t, lost, "records acknowledged during the replication cut died with the master")
	}
	assert.LessOrEqual(t, lost, inWindow+risky, "only records written after the cut can be lost")
	assert.Equal(t, len(done), dup+again)
}

// postJSON is h.produceJSON for load goroutines: no require, errors returned.
func postJSON(h *harness, path, body string) (int, response, error) {
	req, err := http.NewRequest(http.MethodPost, h.base+"/v1/topics/"+path+"/messages", bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := h.http.Do(req)
	if err != nil {
		return 0, response{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, response{}, err
	}
	out := response{Raw: string(data)}
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, &out); err != nil {
			return 0, response{}, err
		}
	}
	return res.StatusCode, out, nil
}
