package group

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGroupWaitsAndRefusesAfterClose(t *testing.T) {
	var g Group
	release := make(chan struct{})
	var ran atomic.Int32
	require.True(t, g.Go(func() { <-release; ran.Add(1) }))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, g.Wait(ctx), context.DeadlineExceeded, "a goroutine still runs")
	require.False(t, g.Go(func() { ran.Add(10) }), "no new work once waiting has begun")
	close(release)
	require.NoError(t, g.Wait(context.Background()))
	require.EqualValues(t, 1, ran.Load())
}

func TestWaitContext(t *testing.T) {
	require.NoError(t, WaitContext(context.Background(), func() {}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	block := make(chan struct{})
	defer close(block)
	require.ErrorIs(t, WaitContext(ctx, func() { <-block }), context.Canceled)
}

func TestStopsDrainInReverseUnderOneCap(t *testing.T) {
	var s Stops
	var order []string
	push := func(name string, err error) {
		s.Push(name, func(context.Context) error { order = append(order, name); return err })
	}
	push("broker", nil)
	push("client", errors.New("boom"))
	s.Push("slow", func(ctx context.Context) error {
		order = append(order, "slow")
		<-ctx.Done() // runs out of the shared cap
		return ctx.Err()
	})
	push("http", nil)
	require.Equal(t, 4, s.Len())
	var logs bytes.Buffer
	start := time.Now()
	err := s.Drain(context.Background(), 100*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	require.Less(t, time.Since(start), 2*time.Second)
	require.Equal(t, []string{"http", "slow", "client", "broker"}, order, "last started, first stopped; a failure stops nothing else")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "slow: ")
	require.ErrorContains(t, err, "client: boom")
	require.Contains(t, logs.String(), "step=client")
	require.Zero(t, s.Len())
	require.NoError(t, s.Drain(context.Background(), 0, nil), "drained: nothing left")
}
