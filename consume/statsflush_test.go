package consume

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// loseFlush is a go-redis hook that lets a stats flush run in Redis and
// then loses its answer, as a read timeout on a busy machine does.
type loseFlush struct {
	on   atomic.Bool
	lost atomic.Int64
}

func (h *loseFlush) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *loseFlush) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}

func (h *loseFlush) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		flush := false
		for _, c := range cmds {
			if a := c.Args(); len(a) > 1 && a[0] == "eval" && a[1] == flushStatsScriptSource {
				flush = true
			}
		}
		if err := next(ctx, cmds); err != nil || !flush || !h.on.Load() {
			return err
		}
		h.lost.Add(1)
		for _, c := range cmds {
			c.SetErr(errLost)
		}
		return errLost
	}
}

// TestStatsFlushAppliedOnce: a stats flush that Redis applied but whose
// answer was lost is sent again as the same batch and counted once. Before,
// the counts were put back and added a second time (Filtered over the
// exact total in TestTenThousandMessagesFiveFiltersTwoReplicas under load).
func TestStatsFlushAppliedOnce(t *testing.T) {
	e := newEnv(t)
	h := &loseFlush{}
	rdb := e.redis.Client()
	rdb.AddHook(h)
	n := e.node(func(o *Options) { o.Redis = rdb })
	ref := newRef("sub")
	n.put(ref, SubscriptionSpec{TagFilter: "PAY_1"})
	msgs := []testMsg{newMsg("PAY_1"), newMsg("PAY_1"), newMsg("PAY_1"), newMsg("PAY_2"), newMsg("PAY_2")}
	produce(t, e.client, ref.TopicName(), msgs)

	var got []Message
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		got = append(got, n.receive(ref, 10, 500)...)
	}
	require.Len(t, got, 3)
	require.Equal(t, AckResponse{Acked: 3}, n.ack(ref, got...))

	h.on.Store(true)
	// Stats flushes first; that flush is applied and its answer lost.
	require.Eventually(t, func() bool {
		_ = n.stats(ref)
		return h.lost.Load() > 0
	}, 10*time.Second, 50*time.Millisecond)
	h.on.Store(false)

	want := Counts{Delivered: 3, Filtered: 2, Acked: 3}
	require.Eventually(t, func() bool { return n.stats(ref).Totals == want }, 10*time.Second, 50*time.Millisecond)
	// Later flushes (the retry and the guard's removal) add nothing more.
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, want, n.stats(ref).Totals)
	fields, err := e.rdb.HKeys(context.Background(), n.svc.statsKey(ref)).Result()
	require.NoError(t, err)
	for _, f := range fields {
		require.NotContains(t, f, statsGuardPrefix, "an applied batch's guard is deleted by the next flush")
	}

	// The last flush, when the engine closes, leaves no guard behind either.
	more := []testMsg{newMsg("PAY_1"), newMsg("PAY_2")}
	produce(t, e.client, ref.TopicName(), more)
	var last []Message
	deadline = time.Now().Add(10 * time.Second)
	for len(last) < 1 && time.Now().Before(deadline) {
		last = append(last, n.receive(ref, 10, 500)...)
	}
	require.Len(t, last, 1)
	require.Equal(t, AckResponse{Acked: 1}, n.ack(ref, last...))
	require.NoError(t, n.svc.Close(context.Background()))
	fields, err = e.rdb.HKeys(context.Background(), n.svc.statsKey(ref)).Result()
	require.NoError(t, err)
	for _, f := range fields {
		require.NotContains(t, f, statsGuardPrefix, "the closing engine's guard is deleted")
	}
	all, err := e.rdb.HGetAll(context.Background(), n.svc.statsKey(ref)).Result()
	require.NoError(t, err)
	var total Counts
	addCounts(&total, map[string]Counts{}, all)
	require.Equal(t, Counts{Delivered: 4, Filtered: 3, Acked: 4}, total)
}
