package testredis

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartServesCommands(t *testing.T) {
	s := Start(t)
	c := s.Client()
	ctx := t.Context()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	got, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got)

	// No persistence: the configuration we asked for is the one running.
	cfg, err := c.ConfigGet(ctx, "appendonly").Result()
	require.NoError(t, err)
	require.Equal(t, "no", cfg["appendonly"])
	cfg, err = c.ConfigGet(ctx, "save").Result()
	require.NoError(t, err)
	require.Empty(t, cfg["save"])
}

func TestServersAreIsolated(t *testing.T) {
	a, b := Start(t), Start(t)
	require.NotEqual(t, a.Addr(), b.Addr())
	ctx := t.Context()
	require.NoError(t, a.Client().Set(ctx, "only-a", "1", 0).Err())
	n, err := b.Client().Exists(ctx, "only-a").Result()
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestRestartEmptiesAndKeepsAddr(t *testing.T) {
	s := Start(t)
	addr := s.Addr()
	c := s.Client()
	ctx := t.Context()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	s.Restart()
	require.Equal(t, addr, s.Addr())
	n, err := c.Exists(ctx, "k").Result() // the client reconnects
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestCloseStopsServer(t *testing.T) {
	s := Start(t)
	s.Close()
	s.Close() // idempotent
	require.Error(t, ping(s.Addr()))
}

func TestMissingBinaryFailsWithHint(t *testing.T) {
	old := Binary
	Binary = "redis-server-that-does-not-exist"
	defer func() { Binary = old }()
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() { // Fatal ends the goroutine through runtime.Goexit
		defer close(done)
		Start(ft)
	}()
	<-done
	require.Contains(t, ft.msg, "apt-get install redis-server")
	_, err := exec.LookPath(Binary)
	require.Error(t, err)
}

type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestPauseHoldsCommandsUntilResume(t *testing.T) {
	s := Start(t)
	c := s.Client()
	defer c.Close()
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	s.Pause()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	assert.Error(t, c.Get(short, "k").Err(), "a paused server does not answer")
	s.Resume()
	assert.Equal(t, "v", c.Get(ctx, "k").Val())
}
