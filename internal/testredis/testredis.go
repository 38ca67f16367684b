// Package testredis starts a real redis-server for tests.
//
// Each Server runs its own redis-server process on a free loopback port, in a
// temporary directory, without persistence (--save "" --appendonly no). The
// process is killed when the test ends. If redis-server is not installed the
// test fails with a hint; it is never skipped silently, because a green run
// without Redis would prove nothing.
package testredis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Binary is the redis-server executable; tests may override it before Start.
var Binary = "redis-server"

// CPUsEnv names the environment variable that, when set to a
// comma-separated list of CPU numbers, restricts every started
// redis-server to those CPUs: for benchmarks that give Redis cores of its
// own, as a production Redis on another machine has
// (docs/benchmarks.md, "Keyed against unkeyed in alternating rounds").
const CPUsEnv = "PSC_TESTREDIS_CPUS"

// pin applies CPUsEnv to process pid, if set.
func pin(pid int) error {
	spec := os.Getenv(CPUsEnv)
	if spec == "" {
		return nil
	}
	var cpus []int
	for f := range strings.SplitSeq(spec, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 0 {
			return fmt.Errorf("testredis: %s=%q: want CPU numbers separated by commas", CPUsEnv, spec)
		}
		cpus = append(cpus, c)
	}
	return setAffinity(pid, cpus)
}

const (
	startTimeout = 10 * time.Second
	startTries   = 3
	installHint  = "redis-server not found in PATH: install it with `apt-get install redis-server`"
)

// Server is one running redis-server process.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int

	// args builds the command line for a port (StartWith); nil: the plain
	// server of Start.
	args func(port int) []string
	// tlsClient, when set, is how waitPing reaches a TLS-only server.
	tlsClient *tls.Config

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *os.File
	exited chan error // receives cmd.Wait's result once
	closed bool
}

// Start launches redis-server on a free loopback port and waits until it
// answers PING. The server is stopped by t.Cleanup (or earlier by Close).
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath(Binary)
	if err != nil {
		tb.Fatal(installHint)
	}
	return start(tb, &Server{tb: tb, bin: bin, dir: tb.TempDir()}, freePort)
}

// start launches s on a port from pick, retrying when the port was taken.
func start(tb testing.TB, s *Server, pick func() (int, error)) *Server {
	tb.Helper()
	tb.Cleanup(s.Close)
	var err error

	var lastErr error
	for range startTries { // the free port may be taken between probe and bind
		s.port, err = pick()
		if err != nil {
			tb.Fatalf("testredis: pick a port: %v", err)
		}
		if lastErr = s.launch(); lastErr == nil {
			return s
		}
	}
	tb.Fatalf("testredis: start redis-server: %v", lastErr)
	return nil
}

// Addr is host:port of the server.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Client returns a new go-redis client for the server; it is closed when the
// test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(s.Options())
	s.tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Options are go-redis options that connect to the server.
func (s *Server) Options() *redis.Options {
	return &redis.Options{
		Addr:            s.Addr(),
		DisableIdentity: true, // CLIENT SETINFO needs Redis 7.2; Debian 12 ships 7.0
		DialTimeout:     2 * time.Second,
		ReadTimeout:     10 * time.Second,
		WriteTimeout:    10 * time.Second,
		TLSConfig:       s.tlsClient.Clone(), // nil for a plain server
	}
}

// Restart kills the server and starts a fresh, empty one on the same port,
// for tests of reconnection (there is no persistence, so data is gone).
func (s *Server) Restart() {
	s.tb.Helper()
	s.stop()
	if err := s.launch(); err != nil {
		s.tb.Fatalf("testredis: restart redis-server: %v", err)
	}
}

// Stop kills the server, keeping its port for Restart: Redis is down
// until then.
func (s *Server) Stop() { s.stop() }

// Pause stops the server process (SIGSTOP) without closing its
// connections: commands hang, as with a Redis stalled by a fork, a slow
// disk or a network partition, until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.tb.Fatalf("testredis: %v: server not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("testredis: %v: %v", sig, err)
	}
}

// CPU is the user plus system CPU time the running redis-server has used
// (/proc/<pid>/stat, in clock ticks of 10 ms), for benchmarks that report
// Redis's share of a request; 0 when it cannot be read (not Linux, not
// running).
func (s *Server) CPU() time.Duration {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	st := string(raw)
	f := strings.Fields(st[strings.LastIndexByte(st, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// Close stops the server. It is idempotent and is also run by t.Cleanup.
func (s *Server) Close() {
	s.stop()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("server closed")
	}
	logPath := filepath.Join(s.dir, "redis.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "no",
	}
	if s.args != nil {
		args = s.args(s.port)
	}
	cmd := exec.Command(s.bin, args...)
	// A file, not a buffer: os/exec then starts no copying goroutine.
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := pin(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		<-exited //nolint:errcheck // a killed server exits with "signal: killed"
		_ = logf.Close()
		return err
	}

	if err := waitPing(s.Addr(), s.tlsClient, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited //nolint:errcheck // a killed server exits with "signal: killed"
		_ = logf.Close()
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w; log:\n%s", err, out)
	}
	s.cmd, s.log, s.exited = cmd, logf, exited
	return nil
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot die of SIGKILL until continued on some kernels
	_ = s.cmd.Process.Kill()
	<-s.exited //nolint:errcheck // reaps the process; a killed server exits with "signal: killed"
	_ = s.log.Close()
	s.cmd, s.log, s.exited = nil, nil, nil
}

// waitPing dials addr until it answers PING, the process exits, or
// startTimeout passes. It speaks raw RESP so that no client goroutines linger.
func waitPing(addr string, tc *tls.Config, exited <-chan error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %w", err)
		default:
		}
		if ping(addr, tc) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG from %s within %s", addr, startTimeout)
		}
		time.Sleep(10 * time.Millisecond) // polling a child process start, not test timing
	}
}

func ping(addr string, tc *tls.Config) error {
	var conn net.Conn
	var err error
	d := &net.Dialer{Timeout: 200 * time.Millisecond}
	if tc != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, tc)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	// -NOAUTH: up, and wanting a password (a sentinel with requirepass).
	if got := string(buf[:n]); got != "+PONG\r\n" && got != "-NOAUTH" {
		return fmt.Errorf("unexpected reply %q", buf[:n])
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
