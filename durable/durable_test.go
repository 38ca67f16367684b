package durable

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

// These tests run under -race: their faults are clusters that are down from
// the start and come up later, so no producer ever reconnects (see
// load_test.go for why that matters).

// checkStored asserts that the broker holds m exactly as a direct send
// would have stored it: same properties (psc-* included), key, event time
// and payload.
func checkStored(t *testing.T, got minipulsar.Message, m *produce.Message) {
	t.Helper()
	assert.Equal(t, m.PulsarProperties(), got.Properties, "properties of %s", m.UID)
	assert.Equal(t, m.Key, got.Key)
	assert.Equal(t, m.Payload, got.Payload)
	assert.True(t, m.EventTime.Equal(got.EventTime), "event time %v, want %v", got.EventTime, m.EventTime)
}

func TestHealthyPrimaryPersists(t *testing.T) {
	pc := connect(t, newBroker(t, minipulsar.Options{}), "primary")
	dc := connect(t, newBroker(t, minipulsar.Options{}), "dr")
	opts := testOptions(t, t.TempDir(), pc, dc)
	s := start(t, opts)

	// Handed over without waiting, as a batch request does: order is kept.
	const n = 200
	msgs := make([]*produce.Message, n)
	results := make([]result, n)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range msgs {
		msgs[i] = newMessage(i, testTopic)
		wg.Add(1)
		s.SendAsync(ctx, msgs[i], func(rc produce.Receipt, err error) {
			results[i] = result{rc, err}
			wg.Done()
		})
	}
	wg.Wait()
	for i, r := range results {
		require.NoError(t, r.err, i)
		require.Equal(t, produce.StatusPersisted, r.rc.Status, i)
		require.Equal(t, "primary", r.rc.Cluster, i)
		require.NotEmpty(t, r.rc.MessageID, i)
	}
	all, err := pc.broker.Messages(testTopic)
	require.NoError(t, err)
	require.Len(t, all, n)
	for i, got := range all {
		require.Equal(t, msgs[i].UID, got.Properties[produce.PropUID], "order on the broker, message %d", i)
		checkStored(t, got, msgs[i])
	}
	assert.Empty(t, stored(t, dc.broker, testTopic))
	rec := opts.Recorder.(*recorder)
	assert.Empty(t, rec.of(tracer.Retried))
	assert.Empty(t, rec.of(tracer.FailedOver))
	assert.Empty(t, rec.of(tracer.Spooled))
	assert.Equal(t, Closed, s.state("primary"))
	require.NoError(t, s.Ready(ctx))
	assert.Equal(t, float64(n), metricValue(t, opts.Registerer.(*prometheus.Registry), "psc_produce_attempts_total",
		map[string]string{"cluster": "primary", "result": "ok"}))
}

// TestFailoverAndBack: with the primary down, messages go to the DR cluster
// (status failover); once the primary is back and has passed its probes
// and trials, traffic returns to it, with exactly one trip of its breaker.
func TestFailoverAndBack(t *testing.T) {
	primary := deadBroker(t)
	pc := connect(t, primary, "primary")
	dc := connect(t, newBroker(t, minipulsar.Options{}), "dr")
	opts := testOptions(t, t.TempDir(), pc, dc)
	s := start(t, opts)
	reg := opts.Registerer.(*prometheus.Registry)

	var sent []*produce.Message
	sendOne := func(i int) (produce.Receipt, time.Duration) {
		m := newMessage(i, testTopic)
		sent = append(sent, m)
		begin := time.Now()
		rc, err := send(t, s, m, 5*time.Second)
		require.NoError(t, err, i)
		return rc, time.Since(begin)
	}
	// The first messages find out the hard way (an attempt timeout each)
	// until the primary's breaker opens; then failover is immediate.
	for i := range 10 {
		rc, took := sendOne(i)
		require.Equal(t, produce.StatusFailover, rc.Status, i)
		require.Equal(t, "dr", rc.Cluster, i)
		require.NotEmpty(t, rc.MessageID)
		switch {
		case i == 0:
			require.Less(t, took, 2*opts.AttemptTimeout, "after one failed attempt the retry goes to the other cluster")
		case i >= 3:
			require.Less(t, took, opts.AttemptTimeout, "message %d: the breaker should send it straight to DR", i)
		}
	}
	require.Equal(t, Open, s.state("primary"))
	failedOver := opts.Recorder.(*recorder).of(tracer.FailedOver)
	require.Len(t, failedOver, 10)
	assert.Equal(t, "dr", failedOver[0].Cluster)
	assert.NotEmpty(t, failedOver[0].Error, "the first one says why it failed over")

	require.NoError(t, primary.Start())
	back := time.Now()
	// Traffic keeps flowing while the primary recovers; every message is
	// durable somewhere, and soon on the primary again.
	persisted := 0
	for i := 10; persisted < 10; i++ {
		require.Less(t, time.Since(back), 20*time.Second, "traffic never returned to the primary")
		rc, _ := sendOne(i)
		require.Contains(t, []produce.Status{produce.StatusFailover, produce.StatusPersisted}, rc.Status)
		if rc.Status == produce.StatusPersisted {
			require.Equal(t, "primary", rc.Cluster)
			persisted++
		} else {
			require.Zero(t, persisted, "message %d went to DR after the primary took one: flapping", i)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("traffic back on the primary %v after it restarted", time.Since(back).Round(time.Millisecond))
	assert.GreaterOrEqual(t, metricValue(t, reg, "psc_cluster_probes_total", map[string]string{"cluster": "primary", "result": "ok"}),
		float64(opts.Breaker.RecoverProbes), "hysteresis: good probes before the primary takes traffic again")
	assert.Equal(t, map[string]float64{"open": 1, "half-open": 1, "closed": 1}, transitionsOf(t, reg, "primary"))
	assert.Equal(t, float64(Closed), metricValue(t, reg, "psc_cluster_state", map[string]string{"cluster": "primary"}))

	onPrimary, onDR := stored(t, primary, testTopic), stored(t, dc.broker, testTopic)
	for _, m := range sent {
		require.Equal(t, 1, onPrimary[m.UID]+onDR[m.UID], "uid %s stored once", m.UID)
	}
}

// TestSpoolAndReplay: with both clusters down every message is spooled;
// when the primary comes back they are replayed onto it in spool order,
// with the properties, key, event time and payload of a direct send, and a
// delayed message keeps its due time.
func TestSpoolAndReplay(t *testing.T) {
	primary, dr := deadBroker(t), deadBroker(t)
	pc, dc := connect(t, primary, "primary"), connect(t, dr, "dr")
	opts := testOptions(t, t.TempDir(), pc, dc)
	s := start(t, opts)
	reg := opts.Registerer.(*prometheus.Registry)

	var msgs []*produce.Message
	for i := range 30 {
		m := newMessage(i, testTopic)
		switch i {
		case 3:
			m.DeliverAfter = time.Hour
		case 4:
			m.IdempotencyKey, m.Tags, m.Properties = "order-4-charge", nil, nil
		case 5:
			m.DuplicateRisk, m.EventTime = true, time.Time{}
		}
		msgs = append(msgs, m)
		rc, err := send(t, s, m, 5*time.Second)
		require.NoError(t, err, i)
		require.Equal(t, produce.Receipt{Status: produce.StatusSpooled}, rc, i)
	}
	require.Equal(t, Open, s.state("primary"))
	require.Equal(t, Open, s.state("dr"))
	h := s.Health()
	require.Equal(t, 30, h.Spool.Depth)
	require.NoError(t, s.Ready(context.Background()), "degraded but ready: the spool takes messages")
	assert.Len(t, opts.Recorder.(*recorder).of(tracer.Spooled), 30)
	assert.Equal(t, float64(30), metricValue(t, reg, "psc_spool_depth", nil))
	assert.Positive(t, metricValue(t, reg, "psc_spool_oldest_age_seconds", nil))

	require.NoError(t, primary.Start())
	waitFor(t, 20*time.Second, "the replay", func() bool { return s.Health().Spool.Depth == 0 })

	all, err := primary.Messages(testTopic)
	require.NoError(t, err)
	require.Len(t, all, len(msgs))
	// The client sends a delayed message on its own, not in a batch, so it
	// may overtake the batch before it: the order holds for the others.
	var order []string
	byUID := map[string]minipulsar.Message{}
	for _, got := range all {
		uid := got.Properties[produce.PropUID]
		byUID[uid] = got
		if uid != msgs[3].UID {
			order = append(order, uid)
		}
	}
	var want []string
	for i, m := range msgs {
		checkStored(t, byUID[m.UID], m)
		if i != 3 {
			want = append(want, m.UID)
		}
	}
	require.Equal(t, want, order, "replay order")
	delayed := byUID[msgs[3].UID]
	assert.True(t, delayed.DeliverAt.Equal(msgs[3].DueAt().Truncate(time.Millisecond)),
		"delayed message: deliver at %v, want %v", delayed.DeliverAt, msgs[3].DueAt())
	replayed := opts.Recorder.(*recorder).of(tracer.Replayed)
	require.Len(t, replayed, 30)
	assert.Equal(t, "primary", replayed[0].Cluster)
	assert.NotEmpty(t, replayed[0].MessageID)
	assert.Equal(t, float64(30), metricValue(t, reg, "psc_spool_replayed_total", map[string]string{"cluster": "primary"}))
	assert.Zero(t, metricValue(t, reg, "psc_spool_depth", nil))
}

// TestReplayToDR: while the primary stays down, the spool drains into the
// DR cluster.
func TestReplayToDR(t *testing.T) {
	primary, dr := deadBroker(t), deadBroker(t)
	pc, dc := connect(t, primary, "primary"), connect(t, dr, "dr")
	s := start(t, testOptions(t, t.TempDir(), pc, dc))
	var uids []string
	for i := range 10 {
		m := newMessage(i, testTopic)
		rc, err := send(t, s, m, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, produce.StatusSpooled, rc.Status)
		uids = append(uids, m.UID)
	}
	require.NoError(t, dr.Start())
	waitFor(t, 20*time.Second, "the replay", func() bool { return s.Health().Spool.Depth == 0 })
	got := stored(t, dr, testTopic)
	for _, uid := range uids {
		assert.Equal(t, 1, got[uid], uid)
	}
	// New messages now fail over to DR directly.
	rc, err := send(t, s, newMessage(10, testTopic), 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, produce.StatusFailover, rc.Status)
}

// TestRetryAfterTimeout: an attempt the broker answers too late is retried;
// the late answer means the message is stored twice, both times with the
// same uid, which is how consumers recognise the duplicate.
func TestRetryAfterTimeout(t *testing.T) {
	b := newBroker(t, minipulsar.Options{})
	pc := connect(t, b, "primary")
	opts := testOptions(t, t.TempDir(), pc, nil)
	opts.AttemptTimeout = 400 * time.Millisecond
	s := start(t, opts)
	reg := opts.Registerer.(*prometheus.Registry)
	_, err := send(t, s, newMessage(0, testTopic), 5*time.Second) // the producer exists
	require.NoError(t, err)

	b.DelayNextSends(1, 700*time.Millisecond)
	m := newMessage(1, testTopic)
	rc, err := send(t, s, m, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, produce.StatusPersisted, rc.Status)
	retried := opts.Recorder.(*recorder).of(tracer.Retried)
	require.NotEmpty(t, retried)
	assert.Equal(t, m.UID, retried[0].UID)
	assert.Equal(t, 1, retried[0].Attempt)
	assert.Contains(t, retried[0].Error, "attempt timeout")
	waitFor(t, 5*time.Second, "the late acknowledgement", func() bool {
		return metricValue(t, reg, "psc_late_acks_total", map[string]string{"cluster": "primary"}) >= 1
	})
	assert.GreaterOrEqual(t, stored(t, b, testTopic)[m.UID], 2, "stored by the late attempt and by the retry")
	assert.GreaterOrEqual(t, metricValue(t, reg, "psc_produce_retries_total", nil), float64(1))
	assert.Equal(t, Closed, s.state("primary"), "one slow answer does not open the breaker")
}

// TestDRRefusalKeepsTheMessageForThePrimary: a DR cluster that refuses a
// message for a reason of its own (here: the topic does not exist there)
// must not turn a message the primary would take into an error. It is
// spooled, and replayed onto the primary when that one is back, at once
// (not after RejectedRetry).
func TestDRRefusalKeepsTheMessageForThePrimary(t *testing.T) {
	primary := deadBroker(t)
	pc := connect(t, primary, "primary")
	dc := connect(t, newBroker(t, minipulsar.Options{DisableAutoTopicCreation: true}), "dr")
	opts := testOptions(t, t.TempDir(), pc, dc)
	s := start(t, opts)
	var uids []string
	for i := range 5 {
		m := newMessage(i, testTopic)
		rc, err := send(t, s, m, 5*time.Second)
		require.NoError(t, err, i)
		require.Equal(t, produce.StatusSpooled, rc.Status, i)
		uids = append(uids, m.UID)
	}
	assert.Equal(t, Closed, s.state("dr"), "a refusal says nothing about the DR cluster's health")
	waitFor(t, 10*time.Second, "a replay the DR cluster refuses", func() bool {
		return metricValue(t, opts.Registerer.(*prometheus.Registry), "psc_spool_replay_rejected_total", nil) > 0
	})
	require.NoError(t, primary.Start())
	waitFor(t, 10*time.Second, "the replay onto the primary", func() bool { return s.Health().Spool.Depth == 0 })
	got := stored(t, primary, testTopic)
	for _, uid := range uids {
		require.Equal(t, 1, got[uid], uid)
	}
}

// TestRejectedIsNotRetried: a message the cluster refuses for good is
// answered at once with ErrRejected (wrapping the client's error), is not
// failed over or spooled, and does not count against the breaker.
func TestRejectedIsNotRetried(t *testing.T) {
	pc := connect(t, newBroker(t, minipulsar.Options{MaxMessageSize: 16 << 10}), "primary")
	dc := connect(t, newBroker(t, minipulsar.Options{}), "dr")
	opts := testOptions(t, t.TempDir(), pc, dc)
	s := start(t, opts)
	_, err := send(t, s, newMessage(0, testTopic), 5*time.Second) // learn the broker's limit
	require.NoError(t, err)

	refused := map[string]bool{}
	for i := range 5 {
		m := newMessage(1, testTopic)
		m.Payload = make([]byte, 64<<10)
		refused[m.UID] = true
		_, err = send(t, s, m, 5*time.Second)
		require.ErrorIs(t, err, ErrRejected, i)
		var pe *pulsar.Error
		require.ErrorAs(t, err, &pe)
		require.Equal(t, pulsar.MessageTooBig, pe.Result())
		require.False(t, Retriable(err))
	}
	assert.Equal(t, Closed, s.state("primary"))
	for _, ev := range opts.Recorder.(*recorder).of(tracer.Retried) {
		assert.False(t, refused[ev.UID], "refused message %s was retried", ev.UID)
	}
	assert.Zero(t, s.Health().Spool.Depth)
	assert.Empty(t, stored(t, dc.broker, testTopic))
}

// TestSpoolFull: with both clusters down and the spool at its size limit,
// messages get ErrSpoolFull, readiness fails, and what was spooled before
// is replayed intact once a cluster is back.
func TestSpoolFull(t *testing.T) {
	primary, dr := deadBroker(t), deadBroker(t)
	pc, dc := connect(t, primary, "primary"), connect(t, dr, "dr")
	opts := testOptions(t, t.TempDir(), pc, dc)
	opts.Spool.MaxBytes, opts.Spool.SegmentBytes = 64<<10, 16<<10
	s := start(t, opts)
	reg := opts.Registerer.(*prometheus.Registry)

	var acked []string
	full := 0
	for i := 0; full < 5; i++ {
		require.Less(t, i, 1000, "the spool never filled up")
		m := newMessage(i, testTopic)
		m.Payload = make([]byte, 2000)
		rc, err := send(t, s, m, 5*time.Second)
		if err != nil {
			require.ErrorIs(t, err, ErrSpoolFull)
			full++
			continue
		}
		require.Equal(t, produce.StatusSpooled, rc.Status)
		acked = append(acked, m.UID)
	}
	require.NotEmpty(t, acked)
	require.ErrorIs(t, s.Ready(context.Background()), ErrSpoolFull, "no cluster and no room: not ready")
	require.True(t, s.Health().SpoolFull)
	assert.Equal(t, float64(5), metricValue(t, reg, "psc_spool_appends_total", map[string]string{"result": "full"}))

	require.NoError(t, primary.Start())
	waitFor(t, 20*time.Second, "the replay", func() bool { return s.Health().Spool.Depth == 0 })
	got := stored(t, primary, testTopic)
	for _, uid := range acked {
		require.Equal(t, 1, got[uid], uid)
	}
	require.NoError(t, s.Ready(context.Background()))
}

// TestCloseLeavesTheRestInTheSpool: Close answers what is under way, keeps
// what it could not replay in the spool, and refuses new messages; a new
// Sender on the directory picks the rest up.
func TestCloseLeavesTheRestInTheSpool(t *testing.T) {
	primary := deadBroker(t)
	pc := connect(t, primary, "primary")
	dir := t.TempDir()
	opts := testOptions(t, dir, pc, nil)
	s, err := New(opts)
	require.NoError(t, err)

	// Hand messages over and close at once: each is answered, durable.
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var spooled []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		m := newMessage(i, testTopic)
		wg.Add(1)
		s.SendAsync(ctx, m, func(rc produce.Receipt, err error) {
			defer wg.Done()
			assert.NoError(t, err)
			assert.Equal(t, produce.StatusSpooled, rc.Status)
			mu.Lock()
			spooled = append(spooled, m.UID)
			mu.Unlock()
		})
	}
	require.NoError(t, s.Close(ctx))
	wg.Wait()
	require.Len(t, spooled, n)
	require.NoError(t, s.Close(ctx), "idempotent")
	_, err = send(t, s, newMessage(n, testTopic), time.Second)
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.Ready(ctx), ErrClosed)

	require.NoError(t, primary.Start())
	s2 := start(t, testOptions(t, dir, pc, nil))
	waitFor(t, 20*time.Second, "the replay", func() bool { return s2.Health().Spool.Depth == 0 })
	got := stored(t, primary, testTopic)
	for _, uid := range spooled {
		require.Equal(t, 1, got[uid], uid)
	}
}

// TestReplayAcksOnlyWhatTheBrokerAcked: while the restarted primary passes
// its probes but cannot take messages (lookups refused), replays fail and
// every record stays in the spool; once it can, all of them arrive.
func TestReplayAcksOnlyWhatTheBrokerAcked(t *testing.T) {
	primary := deadBroker(t)
	pc := connect(t, primary, "primary")
	opts := testOptions(t, t.TempDir(), pc, nil)
	// The broker comes up but cannot create producers; the probe says "up"
	// regardless, so that the replayer keeps trying it.
	primary.RefuseLookups(true)
	opts.Primary.Probe = func(context.Context) error { _ = primary.Start(); return nil }
	s := start(t, opts)
	var uids []string
	for i := range 10 {
		m := newMessage(i, testTopic)
		rc, err := send(t, s, m, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, produce.StatusSpooled, rc.Status)
		uids = append(uids, m.UID)
	}
	waitFor(t, 10*time.Second, "failed replays", func() bool {
		return metricValue(t, opts.Registerer.(*prometheus.Registry), "psc_produce_attempts_total",
			map[string]string{"cluster": "primary", "result": "timeout"})+
			metricValue(t, opts.Registerer.(*prometheus.Registry), "psc_produce_attempts_total",
				map[string]string{"cluster": "primary", "result": "retriable"}) >= 6
	})
	require.Equal(t, 10, s.Health().Spool.Depth, "nothing acknowledged in the spool without a broker acknowledgement")
	require.Empty(t, stored(t, primary, testTopic))

	primary.RefuseLookups(false)
	waitFor(t, 20*time.Second, "the replay", func() bool { return s.Health().Spool.Depth == 0 })
	got := stored(t, primary, testTopic)
	for _, uid := range uids {
		require.Equal(t, 1, got[uid], uid)
	}
}

// TestRefusedProbeCountsAsUp: a probe the cluster refuses for good (here:
// no permission on the health topic) proves the cluster answers, so the
// breaker still recovers.
func TestRefusedProbeCountsAsUp(t *testing.T) {
	primary := deadBroker(t)
	pc := connect(t, primary, "primary")
	opts := testOptions(t, t.TempDir(), pc, nil)
	probe := SendProbe(pc.sender, DefaultHealthTopic)
	opts.Primary.Probe = func(ctx context.Context) error {
		if err := probe(ctx); err != nil {
			return err
		}
		return errors.New("server error: AuthorizationError: not authorized on " + DefaultHealthTopic)
	}
	s := start(t, opts)
	for i := range 4 {
		_, err := send(t, s, newMessage(i, testTopic), 5*time.Second)
		require.NoError(t, err)
	}
	require.Equal(t, Open, s.state("primary"))
	require.NoError(t, primary.Start())
	waitFor(t, 20*time.Second, "the primary's breaker to close", func() bool { return s.state("primary") == Closed })
	rc, err := send(t, s, newMessage(9, testTopic), 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, produce.StatusPersisted, rc.Status)
}

// TestCloseDrainsTheSpool: Close lets the replayer empty the spool into a
// healthy cluster before it stops (a graceful shutdown drains the spool).
func TestCloseDrainsTheSpool(t *testing.T) {
	primary := deadBroker(t)
	pc := connect(t, primary, "primary")
	dir := t.TempDir()
	opts := testOptions(t, dir, pc, nil)
	opts.ReplayWindow = 1 // one SEND per record, so the delay below paces the replay
	s, err := New(opts)
	require.NoError(t, err)
	var uids []string
	for i := range 60 {
		m := newMessage(i, testTopic)
		rc, err := send(t, s, m, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, produce.StatusSpooled, rc.Status)
		uids = append(uids, m.UID)
	}
	primary.DelayNextSends(1<<20, 15*time.Millisecond) // ~1 s of replay
	require.NoError(t, primary.Start())
	waitFor(t, 10*time.Second, "the primary to recover", func() bool { return s.state("primary") == Closed })
	require.Positive(t, s.Health().Spool.Depth, "replay already done: the test would prove nothing")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, s.Close(ctx))
	primary.DelayNextSends(0, 0)

	got := stored(t, primary, testTopic)
	for _, uid := range uids {
		require.Equal(t, 1, got[uid], uid)
	}
	s2 := start(t, testOptions(t, dir, pc, nil))
	assert.Zero(t, s2.Health().Spool.Depth, "the spool was drained before Close returned")
}

func TestNewValidates(t *testing.T) {
	pc := &clusterEnv{sender: &produce.PulsarSender{}}
	for name, opts := range map[string]Options{
		"no primary":      {SpoolDir: t.TempDir()},
		"no spool dir":    {Primary: Cluster{Sender: pc.sender}},
		"DR without send": {Primary: Cluster{Sender: pc.sender}, DR: &Cluster{}, SpoolDir: t.TempDir()},
		"same names":      {Primary: Cluster{Name: "x", Sender: pc.sender}, DR: &Cluster{Name: "x", Sender: pc.sender}, SpoolDir: t.TempDir()},
	} {
		_, err := New(opts)
		assert.Error(t, err, name)
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	errs := []error{ErrSpoolFull, ErrSpoolWrite, ErrRejected, ErrClosed}
	for i, a := range errs {
		for j, b := range errs {
			assert.Equal(t, i == j, errors.Is(a, b), "%v vs %v", a, b)
		}
	}
}
