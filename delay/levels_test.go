package delay

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

const target = "persistent://bill/pay/timeouts"

// env is a broker, a client, a publisher, optionally Redis, controlled time
// and an event log, shared by the engines of one test.
type env struct {
	srv    *minipulsar.Server
	client pulsar.Client
	pub    *testPublisher
	rdb    *redis.Client // nil: no Redis
	clock  *fakeClock
	ev     *events
}

func newEnv(t *testing.T, withRedis bool, opts minipulsar.Options) *env {
	t.Helper()
	srv := minipulsar.RunOptionsT(t, opts)
	v := &env{srv: srv, clock: newFakeClock(base), ev: &events{}}
	v.client = newClient(t, srv.ServiceURL())
	v.pub = newPublisher(t, v.client)
	if withRedis {
		v.rdb = testredis.Start(t).Client()
	}
	return v
}

// engine builds an engine on v with cfg (controlled time unless cfg has a
// clock) and closes it when the test ends.
func (v *env) engine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = v.clock
		cfg.Index.Now = v.clock.Now
	}
	cfg.Logger = quiet
	o := EngineOptions{Client: v.client, Publisher: v.pub, Recorder: v.ev, Config: cfg}
	if v.rdb != nil {
		o.Redis = v.rdb
	}
	e, err := NewEngine(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func levelStats(e *Engine, name string) LevelStats {
	for _, s := range e.LevelStats() {
		if s.Level == name {
			return s
		}
	}
	return LevelStats{}
}

// waitingFor waits until the level's forwarder waits for a message due at
// due.
func waitingFor(t *testing.T, e *Engine, level string, due time.Time) {
	t.Helper()
	eventually(t, func() bool { return levelStats(e, level).Waiting.Equal(due) },
		"level %s never waited for %s (stats %+v)", level, due, levelStats(e, level))
}

func levelReq(uid, level string, accepted time.Time) Request {
	return Request{UID: uid, App: "billing", Topic: target, Key: "order-" + uid, Tags: []string{"PAY_1001", "VIP"},
		Properties: map[string]string{"orderId": uid}, Payload: []byte("payload-" + uid),
		EventTime: base.Add(-time.Hour), Level: level, AcceptedAt: accepted}
}

func TestParseLevels(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string // names, sorted by delay
		err   string
	}{
		{"default", DefaultLevels, []string{"1s", "5s", "10s", "30s", "1m", "2m", "3m", "4m", "5m", "6m", "7m", "8m", "9m", "10m", "20m", "30m", "1h", "2h"}, ""},
		{"commas and order", "1m,10s, 1h30m", []string{"10s", "1m", "1h30m"}, ""},
		{"fraction", "1.5s 500ms", []string{"500ms", "1.5s"}, ""},
		{"same delay twice", "1m 60s", nil, `levels "1m" and "60s" are the same delay`},
		{"upper case", "1S", nil, "only digits"},
		{"not a duration", "soon", nil, "time: invalid duration"},
		{"too short", "500us", nil, "shorter than 1ms"},
		{"zero", "0s", nil, "shorter than 1ms"},
		{"topic characters", "1s/2", nil, "only digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lvs, err := ParseLevels(tt.input)
			if tt.err != "" {
				require.ErrorIs(t, err, ErrConfig)
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			var names []string
			for _, lv := range lvs {
				names = append(names, lv.Name)
				d, _ := time.ParseDuration(lv.Name)
				require.Equal(t, d, lv.Delay)
			}
			require.Equal(t, tt.want, names)
		})
	}
}

func TestLevelTopicsAndLookup(t *testing.T) {
	v := newEnv(t, false, minipulsar.Options{})
	e := v.engine(t, Config{})
	require.Len(t, e.Levels(), 18)
	require.True(t, e.HasLevel("30s"))
	require.True(t, e.HasLevel("60s"), "same delay as 1m")
	require.False(t, e.HasLevel("45s"))
	require.False(t, e.HasLevel(""))
	require.Equal(t, "persistent://public/psc-delay/level-1m", e.LevelTopic("60s"))

	_, err := NewEngine(EngineOptions{Client: v.client, Publisher: v.pub, Config: Config{Levels: LevelsConfig{Topic: "persistent://a/b/delay"}}})
	require.ErrorIs(t, err, ErrConfig, "a template without {level}")
	e2 := v.engine(t, Config{Levels: LevelsConfig{Levels: []string{"2s"}, Topic: "persistent://ops/delays/{level}-q"}})
	require.Equal(t, "persistent://ops/delays/2s-q", e2.LevelTopic("2s"))
	off := v.engine(t, Config{Levels: LevelsConfig{Disabled: true}})
	require.False(t, off.HasLevel("1s"))
	_, err = off.Schedule(t.Context(), levelReq("u", "1s", base))
	require.ErrorIs(t, err, ErrModeUnavailable)
}

// Messages wait in their level's topic until due, by the engine's clock,
// and then reach the real topic in order with everything they carried.
func TestLevelForwardsInOrderNeverEarly(t *testing.T) {
	v := newEnv(t, false, minipulsar.Options{})
	e := v.engine(t, Config{Levels: LevelsConfig{Levels: []string{"10s", "1m"}}})
	ctx := t.Context()

	reqs := []Request{
		levelReq("a1", "10s", base),
		levelReq("b1", "1m", base),
		levelReq("a2", "10s", base.Add(1*time.Second)),
		levelReq("a3", "10s", base.Add(1500*time.Millisecond)),
	}
	reqs[3].EventTime = time.Time{} // none
	for _, r := range reqs {
		res, err := e.Schedule(ctx, r)
		require.NoError(t, err)
		require.Equal(t, ModeLevel, res.Mode)
		require.Equal(t, StatusScheduled, res.Status)
		require.NotNil(t, res.MessageID)
		lv, _ := time.ParseDuration(r.Level)
		require.True(t, res.Due.Equal(r.AcceptedAt.Add(lv)))
	}
	// The level topic holds them with the real topic and due time.
	held, err := v.srv.Messages(e.LevelTopic("10s"))
	require.NoError(t, err)
	require.Len(t, held, 3)
	require.Equal(t, target, held[0].Properties[PropDelayTopic])
	require.Equal(t, base.Add(10*time.Second).UTC().Format(DueLayout), held[0].Properties[PropDelayDue])
	require.Equal(t, []string{"a1", "b1", "a2", "a3"}, v.ev.uidsInOrder(tracer.Scheduled))

	require.NoError(t, e.Start(ctx))
	waitingFor(t, e, "10s", base.Add(10*time.Second))
	waitingFor(t, e, "1m", base.Add(time.Minute))
	v.clock.Set(base.Add(10*time.Second - time.Millisecond))
	require.Equal(t, base.Add(10*time.Second), levelStats(e, "10s").Waiting, "1 ms before due: still waiting")
	require.Empty(t, stored(t, v.srv, target))

	v.clock.Set(base.Add(10 * time.Second))
	waitingFor(t, e, "10s", base.Add(11*time.Second))
	eventually(t, func() bool { return len(stored(t, v.srv, target)) == 1 })
	v.clock.Set(base.Add(11500 * time.Millisecond))
	eventually(t, func() bool { return len(stored(t, v.srv, target)) == 3 })
	require.Equal(t, []string{"a1", "a2", "a3"}, stored(t, v.srv, target))
	require.Equal(t, base.Add(time.Minute), levelStats(e, "1m").Waiting, "the 1m level is not due")
	v.clock.Set(base.Add(time.Minute))
	eventually(t, func() bool { return len(stored(t, v.srv, target)) == 4 })

	// An Exclusive subscription sees them, as produced.
	got := receive(t, subscribe(t, v.client, target, "audit", pulsar.Exclusive), 4)
	for i, uid := range []string{"a1", "a2", "a3", "b1"} {
		m := got[i]
		r := reqs[slices.IndexFunc(reqs, func(r Request) bool { return r.UID == uid })]
		require.Equal(t, r.Payload, m.Payload(), uid)
		require.Equal(t, r.Key, m.Key())
		p := m.Properties()
		require.Equal(t, uid, p[PropUID])
		require.Equal(t, "billing", p[PropApp])
		require.Equal(t, "PAY_1001,VIP", p[PropTags])
		require.Equal(t, uid, p["orderId"])
		require.Equal(t, r.Level, p[PropDelayLevel])
		require.Equal(t, formatDue(r.AcceptedAt.Add(mustDuration(r.Level))), p[PropDelayDue])
		require.NotContains(t, p, PropDelayTopic)
		if r.EventTime.IsZero() {
			require.Zero(t, m.EventTime().UnixMilli())
		} else {
			require.True(t, r.EventTime.Equal(m.EventTime()), "event time %s", m.EventTime())
		}
	}
	// Fired is recorded when the receipt's callback runs, just after the
	// broker has stored the message.
	eventually(t, func() bool { return len(v.ev.of(tracer.Fired)) == 4 })
	fired := v.ev.of(tracer.Fired)
	require.Len(t, fired, 4)
	for _, ev := range fired {
		due, err := parseDue(ev.Properties["due"])
		require.NoError(t, err)
		require.False(t, ev.Time.Before(due), "%s fired at %s, due %s", ev.UID, ev.Time, due)
		require.Equal(t, target, ev.Topic)
		require.Equal(t, "order-"+ev.UID, ev.Key)
		require.Equal(t, "billing", ev.App)
		require.NotEmpty(t, ev.MessageID)
	}
	require.EqualValues(t, 3, levelStats(e, "10s").Forwarded)
}

func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

func (e *events) uidsInOrder(typ tracer.Type) []string {
	var out []string
	for _, ev := range e.of(typ) {
		out = append(out, ev.UID)
	}
	return out
}

// Real time, short levels: what a consumer sees is never before the due
// time recorded on the message, and at most about a second after.
func TestLevelRealTime(t *testing.T) {
	v := newEnv(t, false, minipulsar.Options{})
	e := v.engine(t, Config{Clock: systemClock{}, Levels: LevelsConfig{Levels: []string{"1s", "2s"}}})
	ctx := t.Context()
	require.NoError(t, e.Start(ctx))
	c := subscribe(t, v.client, target, "audit", pulsar.Exclusive)
	handedOver := map[string]time.Time{}
	var mu sync.Mutex
	v.pub.onSend = func(topic string, m *pulsar.ProducerMessage) {
		if topic == target {
			mu.Lock()
			handedOver[m.Properties[PropUID]] = time.Now()
			mu.Unlock()
		}
	}
	const n = 10
	for i := range n {
		_, err := e.Schedule(ctx, Request{UID: fmt.Sprint("rt-", i), Topic: target, Level: []string{"1s", "2s"}[i%2],
			Payload: []byte("x")})
		require.NoError(t, err)
	}
	for range n {
		m := receive(t, c, 1)[0]
		received := time.Now()
		uid := m.Properties()[PropUID]
		due, err := parseDue(m.Properties()[PropDelayDue])
		require.NoError(t, err)
		// Not the publish time: a batch carries the time of its first
		// message, which may be another level's.
		mu.Lock()
		at := handedOver[uid]
		mu.Unlock()
		require.False(t, at.Before(due), "%s handed to the producer %s before due", uid, due.Sub(at))
		require.Less(t, received.Sub(due), time.Second, "%s received %s after due", uid, received.Sub(due))
	}
}

// A restart of the sidecar and the broker in the middle of a delay: the
// subscription's cursor keeps the position, nothing is lost and nothing is
// early.
func TestLevelRestartMidDelay(t *testing.T) {
	v := newEnv(t, false, minipulsar.Options{DataDir: t.TempDir()})
	cfg := Config{Levels: LevelsConfig{Levels: []string{"1m"}}}
	first := v.engine(t, cfg)
	ctx := t.Context()
	const n = 20
	var want []string
	for i := range n {
		uid := fmt.Sprintf("m%02d", i)
		want = append(want, uid)
		_, err := first.Schedule(ctx, levelReq(uid, "1m", base.Add(time.Duration(i)*time.Second)))
		require.NoError(t, err)
	}
	require.NoError(t, first.Start(ctx))
	waitingFor(t, first, "1m", base.Add(time.Minute))
	v.clock.Set(base.Add(time.Minute + 5*time.Second)) // m00..m05 are due
	waitingFor(t, first, "1m", base.Add(time.Minute+6*time.Second))
	eventually(t, func() bool { return len(stored(t, v.srv, target)) == 6 })
	require.NoError(t, first.Close())

	require.NoError(t, v.srv.Restart())
	v.clock.Set(base.Add(time.Minute + 10*time.Second)) // m06..m10 became due while down

	second := v.engine(t, cfg)
	require.NoError(t, second.Start(ctx))
	waitingFor(t, second, "1m", base.Add(time.Minute+11*time.Second))
	eventually(t, func() bool { return len(stored(t, v.srv, target)) == 11 })
	v.clock.Set(base.Add(2 * time.Minute))
	eventually(t, func() bool { return len(stored(t, v.srv, target)) >= n })

	require.Equal(t, want, stored(t, v.srv, target), "each once, in order")
	for _, ev := range v.ev.of(tracer.Fired) {
		due, err := parseDue(ev.Properties["due"])
		require.NoError(t, err)
		require.False(t, ev.Time.Before(due), "%s early", ev.UID)
	}
	// The counter moves when the forward's acknowledgement comes back, which
	// can be a moment after the broker shows the message.
	eventually(t, func() bool { return levelStats(second, "1m").Forwarded == n-6 })
	require.EqualValues(t, n-6, levelStats(second, "1m").Forwarded)
}

// Cancel by uid and by (topic, key) stop level messages that are waiting;
// a message with the key accepted after the cancel is delivered.
func TestLevelCancel(t *testing.T) {
	v := newEnv(t, true, minipulsar.Options{})
	e := v.engine(t, Config{Levels: LevelsConfig{Levels: []string{"10s"}}})
	ctx := t.Context()
	reqs := []Request{levelReq("keep", "10s", base), levelReq("by-uid", "10s", base),
		levelReq("by-key-1", "10s", base), levelReq("by-key-2", "10s", base)}
	reqs[2].Key, reqs[3].Key = "order-7", "order-7"
	for _, r := range reqs {
		_, err := e.Schedule(ctx, r)
		require.NoError(t, err)
	}
	got, err := e.Get(ctx, "by-uid")
	require.NoError(t, err, "a waiting level message is found by uid (its record)")
	require.Equal(t, ModeLevel, got.Mode)
	require.Equal(t, target, got.Topic)
	require.Equal(t, "10s", got.Level)
	require.Equal(t, base.Add(10*time.Second), got.Due)
	c, err := e.Cancel(ctx, "by-uid")
	require.NoError(t, err)
	require.Equal(t, ModeLevel, c.Mode)
	require.False(t, c.InFlight, "due in 10 s: no forwarder can be past its check")
	require.Equal(t, target, c.Message.Topic)
	_, err = e.Cancel(ctx, "by-uid")
	require.ErrorIs(t, err, ErrNotFound, "cancelled once: its record is gone")
	_, err = e.Get(ctx, "by-uid")
	require.ErrorIs(t, err, ErrNotFound)

	// A uid that no level message has: not found, and nothing written.
	before, err := v.rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	cancelledBefore := len(v.ev.of(tracer.Cancelled))
	_, err = e.Cancel(ctx, "never-scheduled")
	require.ErrorIs(t, err, ErrNotFound)
	after, err := v.rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.ElementsMatch(t, before, after, "no mark for a uid that does not exist")
	require.Len(t, v.ev.of(tracer.Cancelled), cancelledBefore, "no cancelled event either")
	require.ErrorIs(t, e.Reschedule(ctx, "keep", base.Add(time.Hour)), ErrLevelFixed)

	uids, err := e.CancelByKey(ctx, target, "order-7")
	require.NoError(t, err)
	require.Empty(t, uids, "no wheel messages had the key")
	_, err = e.Get(ctx, "by-key-1")
	require.ErrorIs(t, err, ErrNotFound, "covered by the key's mark")

	v.clock.Add(time.Millisecond)
	later := levelReq("after-cancel", "10s", v.clock.Now())
	later.Key = "order-7"
	_, err = e.Schedule(ctx, later)
	require.NoError(t, err)

	require.NoError(t, e.Start(ctx))
	v.clock.Set(base.Add(11 * time.Second))
	eventually(t, func() bool {
		s := levelStats(e, "10s")
		return s.Forwarded+s.Cancelled == 5
	})
	require.Equal(t, []string{"keep", "after-cancel"}, stored(t, v.srv, target))
	require.EqualValues(t, 3, levelStats(e, "10s").Cancelled)
	var dropped []string
	for _, ev := range v.ev.of(tracer.Cancelled) {
		if ev.Properties["stage"] == "dropped" {
			dropped = append(dropped, ev.UID)
			require.Equal(t, target, ev.Topic)
		}
	}
	slices.Sort(dropped)
	require.Equal(t, []string{"by-key-1", "by-key-2", "by-uid"}, dropped)

	// The marks expire after the longest level plus the margin.
	ttl, err := v.rdb.TTL(ctx, "psc:delay:lc:u:by-uid").Result()
	require.NoError(t, err)
	require.InDelta(t, (10*time.Second + 24*time.Hour).Seconds(), ttl.Seconds(), 5)
	// Forwarded and dropped messages leave no record behind.
	eventually(t, func() bool {
		n, err := v.rdb.Keys(ctx, "psc:delay:ll:*").Result()
		return err == nil && len(n) == 0
	})
}

// Two replicas attach to the same level topics (Failover): each message is
// forwarded by one of them, once; when the active one goes, the other
// takes over.
func TestLevelTwoReplicasForwardOnce(t *testing.T) {
	v := newEnv(t, false, minipulsar.Options{})
	// Node names order the Failover election: a ("node-a") is active and
	// b joining does not take over.
	a := v.engine(t, Config{Node: "node-a", Levels: LevelsConfig{Levels: []string{"10s"}}})
	b := v.engine(t, Config{Node: "node-b", Levels: LevelsConfig{Levels: []string{"10s"}}})
	ctx := t.Context()
	require.NoError(t, a.Start(ctx))
	// Start attaches in the background: b joins once a is attached, as a
	// replica started later would.
	eventually(t, func() bool { return a.Ready(ctx) == nil })
	require.NoError(t, b.Start(ctx))
	eventually(t, func() bool { return b.Ready(ctx) == nil })
	for i := range 10 {
		_, err := []*Engine{a, b}[i%2].Schedule(ctx, levelReq(fmt.Sprint("x", i), "10s", base))
		require.NoError(t, err)
	}
	eventually(t, func() bool {
		return !levelStats(a, "10s").Waiting.IsZero() || !levelStats(b, "10s").Waiting.IsZero()
	})
	active, standby := a, b
	require.False(t, levelStats(active, "10s").Waiting.IsZero(), "node-a holds the head")
	require.True(t, levelStats(standby, "10s").Waiting.IsZero(), "only one replica holds the head")
	v.clock.Set(base.Add(10 * time.Second))
	eventually(t, func() bool { return len(stored(t, v.srv, target)) == 10 })
	// The count goes up when the receipt's callback runs, just after the
	// broker has stored the message.
	eventually(t, func() bool { return levelStats(active, "10s").Forwarded == 10 })
	require.Zero(t, levelStats(standby, "10s").Forwarded)

	require.NoError(t, active.Close())
	for i := range 5 {
		_, err := standby.Schedule(ctx, levelReq(fmt.Sprint("y", i), "10s", base.Add(20*time.Second)))
		require.NoError(t, err)
	}
	waitingFor(t, standby, "10s", base.Add(30*time.Second))
	v.clock.Set(base.Add(30 * time.Second))
	eventually(t, func() bool { return len(stored(t, v.srv, target)) == 15 })
	all := stored(t, v.srv, target)
	require.Len(t, all, 15, "no duplicates: %v", all)
	slices.Sort(all)
	require.Len(t, slices.Compact(all), 15, "every message: %v", all)
}

// A level message the forwarder cannot read is dropped without blocking
// the level; a forward that fails is retried until the broker takes it.
func TestLevelCorruptMessageAndRetry(t *testing.T) {
	v := newEnv(t, false, minipulsar.Options{})
	e := v.engine(t, Config{Levels: LevelsConfig{Levels: []string{"10s"}}})
	ctx := t.Context()
	topic := e.LevelTopic("10s")
	_, err := send(ctx, v.pub, topic, &pulsar.ProducerMessage{Payload: []byte("not ours")})
	require.NoError(t, err)
	_, err = send(ctx, v.pub, topic, &pulsar.ProducerMessage{Payload: []byte("bad due"),
		Properties: map[string]string{PropUID: "u", PropDelayTopic: target, PropDelayDue: "tomorrow"}})
	require.NoError(t, err)
	_, err = e.Schedule(ctx, levelReq("good", "10s", base))
	require.NoError(t, err)
	v.pub.failNext(target, 2)

	require.NoError(t, e.Start(ctx))
	waitingFor(t, e, "10s", base.Add(10*time.Second))
	require.EqualValues(t, 2, levelStats(e, "10s").Corrupt)
	v.clock.Set(base.Add(10 * time.Second))
	eventually(t, func() bool { return levelStats(e, "10s").Forwarded == 1 })
	require.Equal(t, []string{"good"}, stored(t, v.srv, target))
	require.EqualValues(t, 2, levelStats(e, "10s").Retries)
}

// Engine.Close with a forward that keeps failing returns (the message stays
// unacknowledged for the next forwarder) instead of retrying forever.
func TestLevelCloseDuringFailingForward(t *testing.T) {
	v := newEnv(t, false, minipulsar.Options{})
	cfg := Config{Levels: LevelsConfig{Levels: []string{"10s"}}}
	e := v.engine(t, cfg)
	ctx := t.Context()
	_, err := e.Schedule(ctx, levelReq("stuck", "10s", base))
	require.NoError(t, err)
	v.pub.failNext(target, 1_000_000)
	require.NoError(t, e.Start(ctx))
	v.clock.Set(base.Add(10 * time.Second))
	eventually(t, func() bool { return levelStats(e, "10s").Retries >= 1 })
	require.NoError(t, e.Close())
	require.Empty(t, stored(t, v.srv, target))

	v.pub.failNext(target, 0)
	again := v.engine(t, cfg)
	require.NoError(t, again.Start(ctx))
	eventually(t, func() bool { return len(stored(t, v.srv, target)) == 1 }, "redelivered to the next forwarder")
}

// The engine starts while the broker is down: Start does not wait for the
// level subscriptions, Ready says what is missing, and the forwarders
// attach (and forward what waited) once the broker is back.
func TestLevelAttachWhenBrokerComesBack(t *testing.T) {
	v := newEnv(t, false, minipulsar.Options{})
	e := v.engine(t, Config{Levels: LevelsConfig{Levels: []string{"10s"}}})
	ctx := t.Context()
	_, err := e.Schedule(ctx, levelReq("waited", "10s", base))
	require.NoError(t, err)
	require.NoError(t, v.srv.Close())

	began := time.Now()
	require.NoError(t, e.Start(ctx))
	require.Less(t, time.Since(began), time.Second, "Start does not wait for the broker")
	require.ErrorContains(t, e.Ready(ctx), "waiting for broker: 1 of 1 level forwarders not attached")

	require.NoError(t, v.srv.Start())
	eventually(t, func() bool { return e.Ready(ctx) == nil }, "the forwarder attaches when the broker is back")
	waitingFor(t, e, "10s", base.Add(10*time.Second))
	v.clock.Set(base.Add(10 * time.Second))
	eventually(t, func() bool { return len(stored(t, v.srv, target)) == 1 })
	require.Equal(t, []string{"waited"}, stored(t, v.srv, target))
	require.NoError(t, e.Close())
	require.ErrorIs(t, e.Ready(ctx), ErrClosed)
}
