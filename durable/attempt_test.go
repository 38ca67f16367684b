package durable

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/stretchr/testify/require"
)

// senderFunc adapts a function to produce.Sender, to control exactly when
// (and whether) an attempt's outcome comes.
type senderFunc func(ctx context.Context, m *produce.Message, done func(produce.Receipt, error))

func (f senderFunc) SendAsync(ctx context.Context, m *produce.Message, done func(produce.Receipt, error)) {
	f(ctx, m, done)
}

// TestSendOnce: the callback comes exactly once, from whichever of the
// outcome and the attempt timeout is first; the hand-over context ends when
// the attempt does; a success after the timeout counts as a late ack.
func TestSendOnce(t *testing.T) {
	s := &Sender{log: slog.New(slog.DiscardHandler), met: unseenMetrics()}
	m := &produce.Message{UID: "u1"}
	type call struct {
		rc  produce.Receipt
		err error
	}

	t.Run("outcome first", func(t *testing.T) {
		var handed context.Context
		calls := make(chan call, 2)
		c := &cluster{name: "a", sender: senderFunc(func(ctx context.Context, _ *produce.Message, done func(produce.Receipt, error)) {
			handed = ctx
			done(produce.Receipt{MessageID: "1:2:0:0"}, nil) // on the caller's goroutine, as a sender may
		})}
		s.sendOnce(context.Background(), c, m, 50*time.Millisecond, func(rc produce.Receipt, err error) { calls <- call{rc, err} })
		got := <-calls
		require.NoError(t, got.err)
		require.Equal(t, "1:2:0:0", got.rc.MessageID)
		require.Error(t, handed.Err(), "the hand-over context ends with the attempt")
		time.Sleep(100 * time.Millisecond) // past the timeout: the stopped timer must not answer again
		require.Empty(t, calls)
	})

	t.Run("timeout first", func(t *testing.T) {
		var late func(produce.Receipt, error)
		var handed context.Context
		calls := make(chan call, 2)
		c := &cluster{name: "a", sender: senderFunc(func(ctx context.Context, _ *produce.Message, done func(produce.Receipt, error)) {
			handed, late = ctx, done
		})}
		start := time.Now()
		s.sendOnce(context.Background(), c, m, 30*time.Millisecond, func(rc produce.Receipt, err error) { calls <- call{rc, err} })
		got := <-calls
		require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
		require.True(t, errors.Is(got.err, errAttemptTimeout), "%v", got.err)
		require.True(t, Retriable(got.err))
		<-handed.Done() // the sender learns that the attempt is over
		late(produce.Receipt{MessageID: "late"}, nil)
		require.Empty(t, calls, "a late outcome is not a second answer")
	})

	t.Run("concurrent", func(t *testing.T) {
		// Outcome and timeout racing: still exactly one answer each time.
		for range 200 {
			var n atomic.Int32
			answered := make(chan struct{}, 2)
			c := &cluster{name: "a", sender: senderFunc(func(_ context.Context, _ *produce.Message, done func(produce.Receipt, error)) {
				go func() {
					time.Sleep(time.Millisecond)
					done(produce.Receipt{}, nil)
				}()
			})}
			s.sendOnce(context.Background(), c, m, time.Millisecond, func(produce.Receipt, error) {
				n.Add(1)
				answered <- struct{}{}
			})
			<-answered
			time.Sleep(3 * time.Millisecond)
			require.EqualValues(t, 1, n.Load())
		}
	})
}
