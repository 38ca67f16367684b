package delay

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
)

var noLevels = LevelsConfig{Disabled: true}

// tickTo moves controlled time one second at a time up to end, each time
// once all `runners` wheel runners wait for their next tick; it returns
// when they wait again, that is when the last tick's forwards are done.
func tickTo(t *testing.T, clock *fakeClock, end time.Time, runners int) {
	t.Helper()
	settled := func() {
		eventually(t, func() bool { return clock.Waiting() == runners }, "%d runners waiting", runners)
	}
	for now := clock.Now().Add(time.Second); !now.After(end); now = now.Add(time.Second) {
		settled()
		clock.Set(now)
	}
	settled()
}

func wheelReq(uid string, after time.Duration) Request {
	return Request{UID: uid, App: "billing", Topic: target, Key: "order-" + uid, Tags: []string{"PAY_1001"},
		Properties: map[string]string{"orderId": uid}, Payload: []byte("payload-" + uid),
		EventTime: base.Add(-time.Minute), DeliverAfter: after, AcceptedAt: base}
}

func TestEngineChoosesMode(t *testing.T) {
	v := newEnv(t, true, minipulsar.Options{})
	e := v.engine(t, Config{
		Levels: LevelsConfig{Levels: []string{"30s"}},
		TopicModes: []TopicMode{
			{Pattern: "persistent://bill/native/*", Mode: ModeNative},
			{Pattern: "bill/legacy/*", Mode: ModeNative},
		},
	})
	ctx := t.Context()
	require.Equal(t, ModeWheel, e.ModeFor(target))
	require.Equal(t, ModeNative, e.ModeFor("persistent://bill/native/x"))
	require.Equal(t, ModeNative, e.ModeFor("persistent://bill/legacy/y"))
	require.Equal(t, ModeWheel, e.ModeFor("persistent://bill/native/x/more"), "* stops at /")

	tests := []struct {
		name    string
		req     Request
		mode    Mode
		due     time.Time
		storeIn string // topic the broker holds the message in; "" for the wheel
	}{
		{"level", Request{Level: "30s"}, ModeLevel, base.Add(30 * time.Second), e.LevelTopic("30s")},
		{"level by equal delay", Request{Level: "0.5m"}, ModeLevel, base.Add(30 * time.Second), e.LevelTopic("30s")},
		{"deliverAfter: wheel by default", Request{DeliverAfter: 90 * time.Second}, ModeWheel, base.Add(90 * time.Second), ""},
		{"deliverAt: wheel, rounded up to the second", Request{DeliverAt: base.Add(1500 * time.Millisecond)}, ModeWheel, base.Add(2 * time.Second), ""},
		{"deliverAfter on a native topic", Request{Topic: "persistent://bill/native/x", DeliverAfter: 5 * time.Minute}, ModeNative, base.Add(5 * time.Minute), "persistent://bill/native/x"},
		{"deliverAt on a native namespace by short pattern", Request{Topic: "persistent://bill/legacy/y", DeliverAt: base.Add(time.Hour)}, ModeNative, base.Add(time.Hour), "persistent://bill/legacy/y"},
		{"native: rounded up to the millisecond Pulsar keeps", Request{Topic: "persistent://bill/native/z", DeliverAt: base.Add(time.Microsecond)}, ModeNative, base.Add(time.Millisecond), "persistent://bill/native/z"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.UID, req.AcceptedAt, req.Payload, req.Key = fmt.Sprint("u", i), base, []byte("p"), "k"
			if req.Topic == "" {
				req.Topic = target
			}
			res, err := e.Schedule(ctx, req)
			require.NoError(t, err)
			require.Equal(t, tt.mode, res.Mode)
			require.Equal(t, StatusScheduled, res.Status)
			require.True(t, tt.due.Equal(res.Due), "due %s, want %s", res.Due, tt.due)
			if tt.storeIn == "" {
				require.Nil(t, res.MessageID)
				s, err := e.Get(ctx, req.UID)
				require.NoError(t, err)
				require.True(t, tt.due.Equal(s.Due))
				return
			}
			require.NotNil(t, res.MessageID)
			ms, err := v.srv.Messages(tt.storeIn)
			require.NoError(t, err)
			i := slices.IndexFunc(ms, func(m minipulsar.Message) bool { return m.Properties[PropUID] == req.UID })
			require.GreaterOrEqual(t, i, 0)
			require.EqualValues(t, ms[i].ID.Ledger, res.MessageID.LedgerID())
			require.EqualValues(t, ms[i].ID.Entry, res.MessageID.EntryID())
			if tt.mode == ModeNative {
				require.True(t, tt.due.Equal(ms[i].DeliverAt), "deliverAt %s", ms[i].DeliverAt)
			} else {
				require.True(t, ms[i].DeliverAt.IsZero(), "a level message is not held by the broker")
			}
		})
	}
	for _, ev := range v.ev.of(tracer.Scheduled) {
		require.NotEmpty(t, ev.Properties["mode"])
		require.NotEmpty(t, ev.Properties["deliverAt"])
	}

	bad := []struct {
		name string
		req  Request
		err  error
	}{
		{"no delay", Request{UID: "x", Topic: target}, ErrInvalid},
		{"two delays", Request{UID: "x", Topic: target, Level: "30s", DeliverAfter: time.Second}, ErrInvalid},
		{"negative", Request{UID: "x", Topic: target, DeliverAfter: -time.Second}, ErrInvalid},
		{"no uid", Request{Topic: target, DeliverAfter: time.Second}, ErrInvalid},
		{"no topic", Request{UID: "x", DeliverAfter: time.Second}, ErrInvalid},
		{"unknown level", Request{UID: "x", Topic: target, Level: "45s"}, ErrUnknownLevel},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Schedule(ctx, tt.req)
			require.ErrorIs(t, err, tt.err)
		})
	}
}

func TestEngineConfig(t *testing.T) {
	v := newEnv(t, false, minipulsar.Options{})
	e := v.engine(t, Config{Levels: noLevels})
	require.Equal(t, ModeNative, e.ModeFor(target), "without Redis the default is native")
	_, err := e.Cancel(t.Context(), "x")
	require.ErrorIs(t, err, ErrModeUnavailable)
	_, err = e.CancelByKey(t.Context(), target, "k")
	require.ErrorIs(t, err, ErrModeUnavailable)

	for name, o := range map[string]EngineOptions{
		"no publisher":            {Client: v.client},
		"wheel without redis":     {Client: v.client, Publisher: v.pub, Config: Config{Mode: ModeWheel}},
		"wheel topic w/o redis":   {Client: v.client, Publisher: v.pub, Config: Config{TopicModes: []TopicMode{{Pattern: "*", Mode: ModeWheel}}}},
		"unknown mode":            {Client: v.client, Publisher: v.pub, Config: Config{Mode: "later"}},
		"levels as a time mode":   {Client: v.client, Publisher: v.pub, Config: Config{Mode: ModeLevel}},
		"bad pattern":             {Client: v.client, Publisher: v.pub, Config: Config{TopicModes: []TopicMode{{Pattern: "[", Mode: ModeNative}}}},
		"levels without a client": {Publisher: v.pub},
		"bad level":               {Client: v.client, Publisher: v.pub, Config: Config{Levels: LevelsConfig{Levels: []string{"1x"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewEngine(o)
			require.ErrorIs(t, err, ErrConfig)
		})
	}
}

// A wheel message is kept in Redis, fires at its due second by the engine's
// clock, and reaches an Exclusive subscription with everything it carried.
func TestEngineWheelEndToEnd(t *testing.T) {
	v := newEnv(t, true, minipulsar.Options{})
	e := v.engine(t, Config{Levels: noLevels, Node: "node-1"})
	ctx := t.Context()
	c := subscribe(t, v.client, target, "audit", pulsar.Exclusive)
	req := wheelReq("w1", 3*time.Second)
	res, err := e.Schedule(ctx, req)
	require.NoError(t, err)
	require.Equal(t, ModeWheel, res.Mode)
	again, err := e.Schedule(ctx, req)
	require.NoError(t, err, "a retried request")
	require.True(t, res.Due.Equal(again.Due))
	require.Len(t, v.ev.of(tracer.Scheduled), 1)

	require.NoError(t, e.Start(ctx))
	tickTo(t, v.clock, base.Add(2*time.Second), 1)
	require.Empty(t, stored(t, v.srv, target), "not before due")
	tickTo(t, v.clock, base.Add(3*time.Second), 1)
	require.Equal(t, []string{"w1"}, stored(t, v.srv, target))

	m := receive(t, c, 1)[0]
	require.Equal(t, req.Payload, m.Payload())
	require.Equal(t, req.Key, m.Key())
	require.True(t, req.EventTime.Equal(m.EventTime()))
	require.Equal(t, map[string]string{
		"orderId": "w1", PropUID: "w1", PropApp: "billing", PropTags: "PAY_1001",
		PropDelayDue: base.Add(3 * time.Second).UTC().Format(DueLayout),
	}, m.Properties())

	fired := v.ev.of(tracer.Fired)
	require.Len(t, fired, 1)
	require.Equal(t, base.Add(3*time.Second), fired[0].Time)
	require.Equal(t, wire.FormatMessageID(m.ID()), fired[0].MessageID)
	require.Equal(t, "node-1", fired[0].Node)
	require.Equal(t, []string{"PAY_1001"}, fired[0].Tags)
	_, err = e.Get(ctx, "w1")
	require.ErrorIs(t, err, ErrNotFound, "acked: gone from the index")
}

// Two sidecars share one Redis: each wheel message reaches the topic
// exactly once, never early, at most one tick late (or one sweep for the
// messages only the other replica's wheel holds).
func TestEngineWheelTwoReplicasFireOnce(t *testing.T) {
	v := newEnv(t, true, minipulsar.Options{})
	cfg := Config{Levels: noLevels, Scheduler: SchedulerConfig{Horizon: time.Minute, Sweep: 3 * time.Second, Batch: 16}}
	a, b := v.engine(t, cfg), v.engine(t, cfg)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(3, 4))
	dues := map[string]time.Time{}
	schedule := func(prefix string, n int) {
		for i := range n {
			req := wheelReq(fmt.Sprint(prefix, i), time.Duration(r.Int64N(int64(20*time.Second))))
			res, err := []*Engine{a, b}[i%2].Schedule(ctx, req)
			require.NoError(t, err)
			dues[req.UID] = res.Due
		}
	}
	schedule("before-start-", 60)
	require.NoError(t, a.Start(ctx))
	require.NoError(t, b.Start(ctx))
	schedule("after-start-", 60)
	tickTo(t, v.clock, base.Add(30*time.Second), 2)

	got := stored(t, v.srv, target)
	require.Len(t, got, len(dues))
	for uid := range dues {
		require.Equal(t, 1, countOf(got, uid), uid)
	}
	for _, ev := range v.ev.of(tracer.Fired) {
		due := dues[ev.UID]
		require.False(t, ev.Time.Before(due), "%s early", ev.UID)
		require.LessOrEqual(t, ev.Time.Sub(due), 3*time.Second, "%s late", ev.UID)
	}
}

func countOf(s []string, x string) int {
	n := 0
	for _, y := range s {
		if y == x {
			n++
		}
	}
	return n
}

func TestEngineWheelCancelListReschedule(t *testing.T) {
	v := newEnv(t, true, minipulsar.Options{})
	e := v.engine(t, Config{Levels: noLevels, Scheduler: SchedulerConfig{Horizon: time.Minute}})
	ctx := t.Context()
	for _, uid := range []string{"k1", "k2", "k3", "other"} {
		req := wheelReq(uid, 10*time.Second)
		if uid != "other" {
			req.Key = "order-9"
		}
		_, err := e.Schedule(ctx, req)
		require.NoError(t, err)
	}
	require.NoError(t, e.Start(ctx))

	got, err := e.List(ctx, Query{Topic: target, Key: "order-9"})
	require.NoError(t, err)
	require.Len(t, got, 3)
	s, err := e.Get(ctx, "other")
	require.NoError(t, err)
	require.Equal(t, []byte("payload-other"), s.Payload)

	require.NoError(t, e.Reschedule(ctx, "k1", base.Add(2*time.Second)))
	require.ErrorIs(t, e.Reschedule(ctx, "nope", base), ErrNotFound)
	c, err := e.Cancel(ctx, "k2")
	require.NoError(t, err)
	require.Equal(t, ModeWheel, c.Mode)
	require.False(t, c.InFlight)
	require.Equal(t, "order-9", c.Message.Key)

	tickTo(t, v.clock, base.Add(3*time.Second), 1)
	require.Equal(t, []string{"k1"}, stored(t, v.srv, target), "rescheduled earlier")

	uids, err := e.CancelByKey(ctx, target, "order-9")
	require.NoError(t, err)
	require.Equal(t, []string{"k3"}, uids)
	_, err = e.Cancel(ctx, "k3")
	require.ErrorIs(t, err, ErrNotFound, "no levels: nothing else to cancel")

	tickTo(t, v.clock, base.Add(12*time.Second), 1)
	require.Equal(t, []string{"k1", "other"}, stored(t, v.srv, target))
	require.Equal(t, []string{"k2", "k3"}, v.ev.uids(tracer.Cancelled))
	var rescheduled int
	for _, ev := range v.ev.of(tracer.Scheduled) {
		if ev.Properties["rescheduled"] == "true" {
			rescheduled++
			require.Equal(t, "k1", ev.UID)
		}
	}
	require.Equal(t, 1, rescheduled)
}

func TestEngineLifecycle(t *testing.T) {
	v := newEnv(t, true, minipulsar.Options{})
	e := v.engine(t, Config{Levels: LevelsConfig{Levels: []string{"1s"}}})
	require.NoError(t, e.Start(t.Context()))
	require.Error(t, e.Start(t.Context()), "twice")
	require.NoError(t, e.Close())
	require.NoError(t, e.Close())
	require.ErrorIs(t, e.Start(t.Context()), ErrClosed)
	_, err := e.Schedule(t.Context(), wheelReq("late", time.Second))
	require.ErrorIs(t, err, ErrClosed)

	never := v.engine(t, Config{})
	require.NoError(t, never.Close(), "closing an engine that never started")
}
