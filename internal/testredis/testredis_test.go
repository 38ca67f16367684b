package testredis

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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
	require.Error(t, ping(s.Addr(), nil))
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

// TestTLSServer: a TLS-only server answers a client that trusts its CA,
// refuses one that does not, and with client authentication refuses a
// client without a certificate.
func TestTLSServer(t *testing.T) {
	ca := NewCA(t, "test-ca")
	s := StartTLS(t, ca, false)
	ctx := t.Context()
	require.NoError(t, s.Client().Set(ctx, "k", "v", 0).Err())

	other := NewCA(t, "other-ca")
	o := s.Options()
	o.TLSConfig = other.ClientTLS()
	bad := redis.NewClient(o)
	defer bad.Close()
	err := bad.Ping(ctx).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate signed by unknown authority")

	plain := s.Options()
	plain.TLSConfig = nil
	plain.ReadTimeout = 500 * time.Millisecond
	pc := redis.NewClient(plain)
	defer pc.Close()
	require.Error(t, pc.Ping(ctx).Err(), "no plain-text port")

	mtls := StartTLS(t, ca, true)
	noCert := mtls.Options()
	noCert.TLSConfig = ca.ClientTLS()
	nc := redis.NewClient(noCert)
	defer nc.Close()
	require.Error(t, nc.Ping(ctx).Err(), "tls-auth-clients yes wants a client certificate")
	require.NoError(t, mtls.Client().Ping(ctx).Err())
}

// TestClusterSlotsSpread: three masters share the slots, and keys with one
// hash tag land on one node while a multi-key script over them runs.
func TestClusterSlotsSpread(t *testing.T) {
	c := StartCluster(t, 3)
	cc := c.Client()
	ctx := t.Context()
	shards, err := cc.ClusterShards(ctx).Result()
	require.NoError(t, err)
	require.Len(t, shards, 3)
	for _, sh := range shards {
		require.NotEmpty(t, sh.Slots, "every master serves slots")
	}
	n, err := redis.NewScript(`redis.call('SET', KEYS[1], 1); redis.call('SET', KEYS[2], 2); return 2`).
		Run(ctx, cc, []string{"{x}:a", "{x}:b"}).Int()
	require.NoError(t, err)
	require.Equal(t, 2, n)
	err = redis.NewScript(`return 1`).Run(ctx, cc, []string{"a", "b"}).Err()
	require.ErrorContains(t, err, "CROSSSLOT", "keys without a common tag may not meet in one script")
}

// TestSentinelFailover: with the master gone, the sentinels promote the
// replica and a failover client follows it.
func TestSentinelFailover(t *testing.T) {
	ss := StartSentinel(t, 1, 3, time.Second)
	ctx := t.Context()
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: ss.MasterName, SentinelAddrs: ss.SentinelAddrs(),
		DisableIdentity: true, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer fc.Close()
	require.NoError(t, fc.Set(ctx, "before", "1", 0).Err())
	require.NoError(t, fc.Wait(ctx, 1, time.Second).Err())
	old, err := ss.MasterAddr(ctx)
	require.NoError(t, err)
	require.Equal(t, ss.Master.Addr(), old)

	ss.Master.Stop()
	require.Eventually(t, func() bool {
		addr, err := ss.MasterAddr(ctx)
		return err == nil && addr == ss.Replicas[0].Addr()
	}, 30*time.Second, 100*time.Millisecond, "the replica is promoted")
	require.Eventually(t, func() bool { return fc.Set(ctx, "after", "1", 0).Err() == nil }, 10*time.Second, 50*time.Millisecond)
	v, err := fc.Get(ctx, "before").Result()
	require.NoError(t, err)
	require.Equal(t, "1", v, "what was replicated before the failover is there")
}
