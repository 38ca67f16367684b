package consume

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// loseLease is a go-redis hook on the consume service's own client that
// makes lease calls fail the way a busy or paused Redis does. Each mode is
// what the client sees of one lease call:
//
//   - ran: the script runs in Redis, its answer is lost (a read timeout);
//   - unsent: the call fails before reaching Redis; its arguments are kept,
//     so the test can deliver it late, as a command stuck in a socket would
//     be;
//
// and withdraw=false fails the withdrawal (the release script) too.
type loseLease struct {
	mu       sync.Mutex
	mode     string // "", "ran", "unsent"
	withdraw bool
	late     []any // the unsent lease call's arguments
}

var errLost = errors.New("injected: the answer was lost")

func (h *loseLease) set(mode string, withdraw bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mode, h.withdraw = mode, withdraw
}

func isScript(cmd redis.Cmder, sc *redis.Script) bool {
	a := cmd.Args()
	return len(a) > 1 && (a[1] == sc.Hash())
}

func (h *loseLease) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *loseLease) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *loseLease) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		mode, withdraw := h.mode, h.withdraw
		h.mu.Unlock()
		switch {
		case isScript(cmd, leaseScript) && mode == "ran":
			_ = next(ctx, cmd)
			cmd.SetErr(errLost)
			return errLost
		case isScript(cmd, leaseScript) && mode == "unsent":
			h.mu.Lock()
			h.late = append([]any(nil), cmd.Args()...)
			h.mu.Unlock()
			cmd.SetErr(errLost)
			return errLost
		case isScript(cmd, releaseScript) && !withdraw:
			cmd.SetErr(errLost)
			return errLost
		}
		return next(ctx, cmd)
	}
}

func (n *node) receiveErr(ref SubscriptionRef) (int, ErrorBody) {
	n.t.Helper()
	var resp ReceiveResponse
	return n.do(http.MethodPost, subPath(ref)+"/receive", ReceiveRequest{Max: 10, WaitMs: 3000}, &resp)
}

// TestStoreUnavailableLeavesNothingLeased: a receive whose lease ran in
// Redis but whose answer was lost answers 503 STORE_UNAVAILABLE "nothing
// was changed", and that is true: the next receive gets the message at
// once as its first delivery, not after the 30 s ack timeout.
func TestStoreUnavailableLeavesNothingLeased(t *testing.T) {
	e := newEnv(t)
	h := &loseLease{}
	rdb := e.redis.Client()
	rdb.AddHook(h)
	n := e.node(func(o *Options) { o.Redis = rdb })
	ref := newRef("sub")
	n.put(ref, SubscriptionSpec{TagFilter: "PAY_1", AckTimeout: "30s"})
	msgs := []testMsg{newMsg("PAY_1")}
	produce(t, e.client, ref.TopicName(), msgs)

	h.set("ran", true)
	st, eb := n.receiveErr(ref)
	require.Equal(t, http.StatusServiceUnavailable, st)
	require.Equal(t, CodeStoreUnavailable, eb.Code)
	require.Contains(t, eb.Message, "nothing was changed")

	h.set("", true)
	start := time.Now()
	got := n.receive(ref, 10, 3000)
	require.Equal(t, msgUIDs(msgs), uids(got), "not left leased")
	require.Less(t, time.Since(start), 2*time.Second)
	require.Zero(t, got[0].RedeliveryCount, "the lost lease's delivery was taken back")
	require.Equal(t, AckResponse{Acked: 1}, n.ack(ref, got...))
}

// TestStoreUnavailableLateLeaseIsWithdrawn: a lease call that reaches Redis
// only after the receive gave up (and withdrew it) changes nothing.
func TestStoreUnavailableLateLeaseIsWithdrawn(t *testing.T) {
	e := newEnv(t)
	h := &loseLease{}
	rdb := e.redis.Client()
	rdb.AddHook(h)
	n := e.node(func(o *Options) { o.Redis = rdb })
	ref := newRef("sub")
	n.put(ref, SubscriptionSpec{TagFilter: "PAY_1", AckTimeout: "30s"})
	msgs := []testMsg{newMsg("PAY_1")}
	produce(t, e.client, ref.TopicName(), msgs)

	h.set("unsent", true)
	st, eb := n.receiveErr(ref)
	require.Equal(t, http.StatusServiceUnavailable, st)
	require.Contains(t, eb.Message, "nothing was changed")
	h.set("", true)
	h.mu.Lock()
	late := h.late
	h.mu.Unlock()
	require.NotEmpty(t, late)
	res, err := e.rdb.Do(context.Background(), late...).Slice()
	require.NoError(t, err)
	require.Empty(t, res, "the withdrawn attempt did nothing when it arrived")

	got := n.receive(ref, 10, 3000)
	require.Equal(t, msgUIDs(msgs), uids(got))
	require.Zero(t, got[0].RedeliveryCount)
}

// TestStoreUnavailableCannotWithdraw: when the withdrawal fails too, the
// answer says what is true: the messages come back after the ack timeout.
func TestStoreUnavailableCannotWithdraw(t *testing.T) {
	e := newEnv(t)
	h := &loseLease{}
	rdb := e.redis.Client()
	rdb.AddHook(h)
	n := e.node(func(o *Options) { o.Redis = rdb })
	ref := newRef("sub")
	n.put(ref, SubscriptionSpec{TagFilter: "PAY_1", AckTimeout: "2s"})
	msgs := []testMsg{newMsg("PAY_1")}
	produce(t, e.client, ref.TopicName(), msgs)

	h.set("ran", false)
	st, eb := n.receiveErr(ref)
	require.Equal(t, http.StatusServiceUnavailable, st)
	require.Equal(t, CodeStoreUnavailable, eb.Code)
	require.NotContains(t, eb.Message, "nothing was changed")
	require.Contains(t, eb.Message, "delivered again after the ack timeout (2s)")

	h.set("", true)
	require.Empty(t, n.receive(ref, 10, 500), "leased, as the answer said")
	got := n.receiveUntil(ref, 1, 5*time.Second)
	require.Equal(t, msgUIDs(msgs), uids(got), "and back after the ack timeout")
}
