package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartArgs launches redis-server like Start with extra arguments after the
// defaults (a later argument wins), for replicas and cluster nodes. It
// skips the test when redis-server is not installed.
func StartArgs(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	return startArgs(tb, freePort, extra...)
}

func startArgs(tb testing.TB, pick func() (int, error), extra ...string) *Server {
	tb.Helper()
	s := &Server{tb: tb, bin: lookPath(tb), dir: tb.TempDir()}
	s.args = func(port int) []string {
		return append(defaultArgs(port, s.dir), extra...)
	}
	return start(tb, s, pick)
}

func defaultArgs(port int, dir string) []string {
	return []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "no",
	}
}

// SentinelSet is a master, its replicas and the sentinels watching them,
// all redis-server processes on loopback.
type SentinelSet struct {
	MasterName string
	Master     *Server
	Replicas   []*Server
	Sentinels  []*Server
	// Password is the sentinels' own (requirepass in sentinel.conf), if any.
	Password string
}

// SentinelOptions shape a SentinelSet.
type SentinelOptions struct {
	Replicas, Sentinels int
	// DownAfter without an answer, the sentinels declare the master down.
	DownAfter time.Duration
	// Password, when set, is required by the sentinels (requirepass, and
	// sentinel-pass between them).
	Password string
}

// StartSentinel starts a master, replicas replicas of it and sentinels
// sentinels (quorum: a majority of them) that declare a master down after
// downAfter without an answer, and waits until every sentinel knows every
// replica and every other sentinel, and every replica is in sync, so a
// failover can start as soon as the master dies.
func StartSentinel(tb testing.TB, replicas, sentinels int, downAfter time.Duration) *SentinelSet {
	tb.Helper()
	return StartSentinelWith(tb, SentinelOptions{Replicas: replicas, Sentinels: sentinels, DownAfter: downAfter})
}

// StartSentinelWith is StartSentinel with every option.
func StartSentinelWith(tb testing.TB, o SentinelOptions) *SentinelSet {
	tb.Helper()
	replicas, sentinels, downAfter := o.Replicas, o.Sentinels, o.DownAfter
	// No five-second wait before a replica's first (diskless) sync.
	ss := &SentinelSet{MasterName: "psc-master", Master: StartArgs(tb, "--repl-diskless-sync-delay", "0"), Password: o.Password}
	for range replicas {
		ss.Replicas = append(ss.Replicas, StartArgs(tb, "--replicaof", "127.0.0.1", strconv.Itoa(ss.Master.port)))
	}
	quorum := sentinels/2 + 1
	for range sentinels {
		s := &Server{tb: tb, bin: lookPath(tb), dir: tb.TempDir()}
		s.args = func(port int) []string {
			conf := filepath.Join(s.dir, "sentinel.conf")
			text := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n"+
				"sentinel monitor %s 127.0.0.1 %d %d\n"+
				"sentinel down-after-milliseconds %s %d\n"+
				"sentinel failover-timeout %s 10000\n"+
				"sentinel parallel-syncs %s 1\n",
				port, s.dir, ss.MasterName, ss.Master.port, quorum, ss.MasterName, downAfter.Milliseconds(),
				ss.MasterName, ss.MasterName)
			if o.Password != "" {
				text += fmt.Sprintf("requirepass %q\nsentinel sentinel-pass %q\n", o.Password, o.Password)
			}
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				tb.Fatalf("testredis: sentinel config: %v", err)
			}
			return []string{conf, "--sentinel"}
		}
		ss.Sentinels = append(ss.Sentinels, start(tb, s, freePort))
	}
	ss.waitDiscovered(replicas, sentinels)
	return ss
}

// SentinelAddrs are the sentinels' host:port.
func (ss *SentinelSet) SentinelAddrs() []string {
	out := make([]string, len(ss.Sentinels))
	for i, s := range ss.Sentinels {
		out[i] = s.Addr()
	}
	return out
}

// MasterAddr asks the first sentinel that answers which address is the
// master now.
func (ss *SentinelSet) MasterAddr(ctx context.Context) (string, error) {
	var lastErr error
	for _, s := range ss.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), Password: ss.Password, DisableIdentity: true, DialTimeout: time.Second})
		addr, err := c.GetMasterAddrByName(ctx, ss.MasterName).Result()
		_ = c.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("testredis: no sentinel names the master: %w", lastErr)
}

func (ss *SentinelSet) waitDiscovered(replicas, sentinels int) {
	tb := ss.Master.tb
	tb.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second) // sentinels say hello every 2 s
	for _, s := range ss.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), Password: ss.Password, DisableIdentity: true})
		for {
			reps, err1 := c.Replicas(ctx, ss.MasterName).Result()
			peers, err2 := c.Sentinels(ctx, ss.MasterName).Result()
			if err1 == nil && err2 == nil && len(reps) == replicas && len(peers) == sentinels-1 && replicasUp(reps) {
				break
			}
			if time.Now().After(deadline) {
				_ = c.Close()
				tb.Fatalf("testredis: sentinel %s sees %d replicas (%v) and %d peers (%v), want %d and %d",
					s.Addr(), len(reps), err1, len(peers), err2, replicas, sentinels-1)
			}
			time.Sleep(100 * time.Millisecond) // polling the sentinels' own discovery
		}
		_ = c.Close()
	}
	for _, r := range ss.Replicas {
		c := redis.NewClient(r.Options())
		for {
			info, err := c.Info(ctx, "replication").Result()
			if err == nil && strings.Contains(info, "master_link_status:up") {
				break
			}
			if time.Now().After(deadline) {
				_ = c.Close()
				tb.Fatalf("testredis: replica %s not in sync: %v\n%s", r.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond) // polling the replica's initial sync
		}
		_ = c.Close()
	}
}

// replicasUp: no replica is flagged down or disconnected.
func replicasUp(reps []map[string]string) bool {
	for _, r := range reps {
		if f := r["flags"]; f != "slave" && f != "replica" {
			return false
		}
	}
	return true
}

// Cluster is a Redis Cluster of masters only, each a redis-server process
// on loopback, joined with `redis-cli --cluster create`.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts masters cluster-enabled servers, joins them with
// redis-cli (which assigns the 16384 slots evenly), and waits until every
// node reports cluster_state:ok. It skips the test when redis-server or
// redis-cli is not installed.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Skip("redis-cli not found in PATH: install it with `apt-get install redis-tools`")
	}
	c := &Cluster{}
	for range masters {
		c.Nodes = append(c.Nodes, startArgs(tb, freeClusterPort,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000"))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("testredis: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitOK(ctx)
	return c
}

// Addrs are the nodes' host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// Client returns a cluster client over every node, closed when the test
// ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DisableIdentity: true,
		DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	c.Nodes[0].tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

func (c *Cluster) waitOK(ctx context.Context) {
	tb := c.Nodes[0].tb
	tb.Helper()
	for _, n := range c.Nodes {
		rc := redis.NewClient(n.Options())
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))) {
				break
			}
			if ctx.Err() != nil {
				_ = rc.Close()
				tb.Fatalf("testredis: cluster node %s not ok: %v\n%s", n.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond) // polling the cluster's own convergence
		}
		_ = rc.Close()
	}
}

// freeClusterPort is a free port whose cluster bus port (port + 10000) is
// free too.
func freeClusterPort() (int, error) {
	for range 100 {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port with a free cluster bus port")
}
