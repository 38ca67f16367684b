package embedredis

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	s, err := Start(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func client(t *testing.T, s *Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true})
	c.AddHook(s.Hook())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// crash stops s the way a SIGKILL would: no last snapshot.
func crash(s *Server) {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.done
		s.m.Close()
	})
}

// TestTTLRealTime: a key with a 2 s TTL exists after 1.5 s, its TTL
// having moved with the clock, and is gone within the resolution (100 ms,
// either way) and some scheduling slack of 2 s.
func TestTTLRealTime(t *testing.T) {
	s := start(t, Options{})
	c := client(t, s)
	ctx := context.Background()
	set := time.Now()
	require.NoError(t, c.Set(ctx, "k", "v", 2*time.Second).Err())
	time.Sleep(1500 * time.Millisecond)
	pttl, err := c.PTTL(ctx, "k").Result()
	require.NoError(t, err)
	require.Greater(t, pttl, time.Duration(0), "still there at 1.5 s")
	require.LessOrEqual(t, pttl, 600*time.Millisecond, "its TTL moved with the clock (%v)", pttl)
	for c.Exists(ctx, "k").Val() == 1 {
		require.Less(t, time.Since(set), 2400*time.Millisecond, "still there 2.4 s after a 2 s TTL")
		time.Sleep(5 * time.Millisecond)
	}
	gone := time.Since(set)
	require.GreaterOrEqual(t, gone, 1850*time.Millisecond, "gone more than a step early")
	t.Logf("a 2 s TTL ended after %v", gone)
}

func fill(t *testing.T, c *redis.Client) {
	ctx := context.Background()
	p := c.TxPipeline()
	p.HSet(ctx, "h", "uid", "u1", "fp", "\x00\xff")
	p.Expire(ctx, "h", time.Hour)
	p.Set(ctx, "s", "v", 0)
	p.Set(ctx, "short", "v", 300*time.Millisecond)
	p.SAdd(ctx, "set", "a", "b")
	p.ZAdd(ctx, "z", redis.Z{Score: 1.5, Member: "m1"}, redis.Z{Score: 1765000000123, Member: "m2"})
	p.RPush(ctx, "l", "1", "2", "2")
	_, err := p.Exec(ctx)
	require.NoError(t, err)
}

func check(t *testing.T, c *redis.Client) {
	ctx := context.Background()
	require.Equal(t, map[string]string{"uid": "u1", "fp": "\x00\xff"}, c.HGetAll(ctx, "h").Val())
	ttl := c.TTL(ctx, "h").Val()
	require.True(t, ttl > 59*time.Minute && ttl <= time.Hour, "ttl %v", ttl)
	require.Equal(t, "v", c.Get(ctx, "s").Val())
	require.Equal(t, time.Duration(-1), c.TTL(ctx, "s").Val(), "no TTL stays no TTL")
	require.ElementsMatch(t, []string{"a", "b"}, c.SMembers(ctx, "set").Val())
	require.Equal(t, []redis.Z{{Score: 1.5, Member: "m1"}, {Score: 1765000000123, Member: "m2"}}, c.ZRangeWithScores(ctx, "z", 0, -1).Val())
	require.Equal(t, []string{"1", "2", "2"}, c.LRange(ctx, "l", 0, -1).Val())
}

func TestRestartKeepsKeyspace(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Options{Dir: dir})
	fill(t, client(t, s))
	require.NoError(t, s.Close())
	time.Sleep(400 * time.Millisecond) // "short" expires while down

	s = start(t, Options{Dir: dir})
	c := client(t, s)
	check(t, c)
	require.Equal(t, int64(0), c.Exists(context.Background(), "short").Val(), "expired while down")
}

// TestCrashKeepsLastSnapshot: without a clean stop, what was written one
// snapshot interval before the crash is there after it.
func TestCrashKeepsLastSnapshot(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Options{Dir: dir, SnapshotInterval: 200 * time.Millisecond})
	c := client(t, s)
	fill(t, c)
	time.Sleep(600 * time.Millisecond) // covers the interval plus a sweep
	crash(s)

	s = start(t, Options{Dir: dir})
	check(t, client(t, s))
}

func TestCorruptSnapshotMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, File)
	require.NoError(t, os.WriteFile(path, []byte("PSCREDIS\x01 torn"), 0o600))
	var log bytes.Buffer
	s := start(t, Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	require.Empty(t, s.m.Keys(), "starts empty")
	require.NoFileExists(t, path)
	aside, err := filepath.Glob(path + ".corrupt-*")
	require.NoError(t, err)
	require.Len(t, aside, 1)
	got, err := os.ReadFile(aside[0])
	require.NoError(t, err)
	require.Equal(t, "PSCREDIS\x01 torn", string(got), "kept as it was, for a post-mortem")
	require.Contains(t, log.String(), "level=ERROR")
	require.Contains(t, log.String(), "moved aside")
	require.Contains(t, log.String(), "corrupt snapshot")

	// and the next snapshot is written in its place
	require.NoError(t, client(t, s).Set(context.Background(), "k", "v", 0).Err())
	require.NoError(t, s.Save())
	require.FileExists(t, path)
}

func TestUnreadableSnapshotFailsStart(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, File), 0o700)) // a directory where the file should be
	_, err := Start(Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	require.Error(t, err)
	require.Contains(t, err.Error(), "read snapshot")
}

// TestSnapshotConsistent: a script that writes two keys together is never
// seen half done by a snapshot, however they interleave.
func TestSnapshotConsistent(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Options{Dir: dir})
	c := client(t, s)
	ctx := context.Background()
	for i := range 300 { // enough keys that a copy takes a while
		require.NoError(t, c.Set(ctx, "pad:"+strconv.Itoa(i), "x", 0).Err())
	}
	both := redis.NewScript(`redis.call('INCR', KEYS[1]); redis.call('INCR', KEYS[2]); return 1`)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := both.Run(ctx, c, []string{"a", "zz"}).Err(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	for range 30 {
		require.NoError(t, s.Save())
		data, err := os.ReadFile(filepath.Join(dir, File))
		require.NoError(t, err)
		snap, err := Decode(data)
		require.NoError(t, err)
		vals := map[string]string{}
		for _, e := range snap.Entries {
			if e.Key == "a" || e.Key == "zz" {
				vals[e.Key] = e.Values[0]
			}
		}
		require.Equal(t, vals["a"], vals["zz"], "a snapshot saw half a script")
	}
}
