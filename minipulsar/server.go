package minipulsar

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Version is what minipulsar reports as its server version.
const Version = "minipulsar-0.1"

// Options configure a Server. The zero value is a valid in-memory broker on
// random loopback ports.
type Options struct {
	// Addr is the binary-protocol listen address; "" means 127.0.0.1:0.
	Addr string
	// AdminAddr is the HTTP admin and lookup listen address; "" means
	// 127.0.0.1:0. "-" disables the admin listener.
	AdminAddr string
	// DataDir, when set, makes topics, messages and subscription cursors
	// persist across restarts (see docs/adr/001-minipulsar-storage.md).
	DataDir string
	// MaxMessageSize advertised in CONNECTED; 0 means DefaultMaxMessageSize.
	MaxMessageSize int
	// Deduplication turns on broker deduplication by producer name and
	// sequence id for every topic (off by default, as in Pulsar). It can
	// also be set per namespace with SetDeduplication.
	Deduplication bool
	// KeepAlive is the interval of the broker's keep-alive checks, as
	// Pulsar's keepAliveIntervalSeconds: every interval each connection
	// gets a PING, and one that sent nothing since the previous PING is
	// closed. 0 means 30 s.
	KeepAlive time.Duration
	// Clock drives delayed delivery and seeks by time; nil is the real clock.
	Clock Clock
	// Logger receives the broker's logs; nil discards them below Warn.
	Logger *slog.Logger
	// AllowAutoTopicCreation is true unless DisableAutoTopicCreation is set.
	DisableAutoTopicCreation bool
	// Namespaces says whether a topic's tenant and namespace must have been
	// created (RequireNamespaces, as Pulsar) or are created on first use
	// (AutoCreateNamespaces, the zero value).
	Namespaces NamespacePolicy
	// TLS, when set, makes both listeners serve TLS only, as a broker's
	// brokerServicePortTls and webServicePortTls: ServiceURL is then
	// pulsar+ssl:// and AdminURL https://. Set ClientAuth in it to require
	// client certificates (mutual TLS).
	TLS *tls.Config
	// Authenticate, when set, checks every CONNECT's credentials (auth.go);
	// an error refuses the connection with AuthenticationError. Nil
	// accepts every client, as minipulsar always did. Either way Connects
	// records what clients sent.
	Authenticate func(Credentials) error
	// EntryCacheSize bounds, with a DataDir, the bytes of persistent
	// topics' entries kept in memory (as Pulsar's managedLedgerCacheSizeMB):
	// entries every subscription has read, and the oldest ones once the
	// bound is passed, are read back from the segment files when needed.
	// 0 means DefaultEntryCacheSize. Without a DataDir everything stays in
	// memory, as there is no other copy.
	EntryCacheSize int64
}

// Server is an in-process broker that speaks the Pulsar binary protocol and
// the admin REST subset pulsaradmin uses. It is for tests and development,
// never for production. Create it with NewServer (not started), Run or RunT.
type Server struct {
	opts  Options
	log   *slog.Logger
	clock Clock
	// keepAliveClock times keep-alive checks: the real clock, apart from
	// tests of keep-alive itself. It is not Options.Clock, whose users
	// advance time in jumps that would starve connections of PONGs.
	keepAliveClock Clock

	mu        sync.Mutex
	running   bool
	ln        net.Listener
	adminLn   net.Listener
	http      *http.Server
	addr      string // resolved binary address, kept for restarts
	adminAddr string
	conns     map[*conn]struct{}
	quit      chan struct{}
	wg        sync.WaitGroup

	// broker state, guarded by stateMu; survives Close/Start of the same
	// Server (like a broker restart) and, with DataDir, process restarts.
	stateMu     sync.Mutex
	topics      map[string]*topic // by full name, partitions included
	partitioned map[string]int    // partitioned topic full name -> partitions
	dedupNS     map[string]bool   // namespace -> deduplication override
	tenants     map[string]struct{}
	namespaces  map[string]struct{} // "tenant/namespace"
	dedupTopic  map[string]bool     // topic -> deduplication override
	nextLedger  uint64
	store       store
	cacheBytes  atomic.Int64 // bytes of entries in memory (entrycache.go)

	schemas     schemaRegistry
	producerSeq atomic.Uint64
	accepted    atomic.Int64 // connections accepted, for tests
	authMu      sync.Mutex
	connects    []Credentials // auth.go
	faults      faults
}

// NewServer returns a broker that is not started yet.
func NewServer(opts Options) *Server {
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.EntryCacheSize <= 0 {
		opts.EntryCacheSize = DefaultEntryCacheSize
	}
	s := &Server{opts: opts, clock: opts.Clock, log: opts.Logger, keepAliveClock: realClock{}}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s.log = s.log.With("component", "minipulsar")
	return s
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Run starts an in-memory broker on random loopback ports.
func Run() (*Server, error) {
	s := NewServer(Options{})
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// RunT starts an in-memory broker for a test and closes it when the test ends.
func RunT(t testing.TB) *Server {
	t.Helper()
	return RunOptionsT(t, Options{})
}

// RunOptionsT is RunT with options.
func RunOptionsT(t testing.TB, opts Options) *Server {
	t.Helper()
	s := NewServer(opts)
	if err := s.Start(); err != nil {
		t.Fatalf("minipulsar: start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Start opens the listeners and starts serving. After Close, Start reopens
// the same ports and keeps every topic, message and cursor.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("minipulsar: already running")
	}
	if err := s.loadState(); err != nil {
		return err
	}
	addr := s.addr
	if addr == "" {
		addr = s.opts.Addr
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("minipulsar: listen %s: %w", addr, err)
	}
	s.ln, s.addr = ln, ln.Addr().String()
	if s.opts.TLS != nil {
		s.ln = tls.NewListener(ln, s.opts.TLS)
	}
	if s.opts.AdminAddr != "-" {
		aaddr := s.adminAddr
		if aaddr == "" {
			aaddr = s.opts.AdminAddr
		}
		if aaddr == "" {
			aaddr = "127.0.0.1:0"
		}
		aln, err := net.Listen("tcp", aaddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("minipulsar: listen admin %s: %w", aaddr, err)
		}
		s.adminLn, s.adminAddr = aln, aln.Addr().String()
		if s.opts.TLS != nil {
			s.adminLn = tls.NewListener(aln, s.opts.TLS)
		}
		s.http = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	s.conns = map[*conn]struct{}{}
	s.quit = make(chan struct{})
	s.running = true
	s.goFunc(func() { s.acceptLoop(s.ln) })
	if s.http != nil {
		srv, aln := s.http, s.adminLn
		s.goFunc(func() { _ = srv.Serve(aln) })
	}
	s.log.Info("started", "addr", s.addr, "admin", s.adminAddr, "dataDir", s.opts.DataDir)
	return nil
}

// goFunc runs f on a goroutine that Close waits for.
func (s *Server) goFunc(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// Close stops serving: listeners and every connection are closed, durable
// state is flushed. It is idempotent; Start may be called again.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return nil
	}
	s.running = false
	close(s.quit)
	_ = s.ln.Close()
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
	return s.closeState()
}

// Restart closes the broker and starts it again on the same ports, keeping
// its data, like a real broker restart.
func (s *Server) Restart() error {
	if err := s.Close(); err != nil {
		return err
	}
	return s.Start()
}

// Addr is the binary protocol's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ServiceURL is the pulsar:// URL clients connect to (pulsar+ssl:// with
// Options.TLS).
func (s *Server) ServiceURL() string {
	if s.opts.TLS != nil {
		return "pulsar+ssl://" + s.Addr()
	}
	return "pulsar://" + s.Addr()
}

// AdminAddr is the admin listener's host:port ("" when disabled).
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminAddr
}

// AdminURL is the http:// URL of the admin REST API and HTTP lookup
// (https:// with Options.TLS).
func (s *Server) AdminURL() string {
	if s.opts.TLS != nil {
		return "https://" + s.AdminAddr()
	}
	return "http://" + s.AdminAddr()
}

func (s *Server) acceptLoop(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		if s.faults.refusing() {
			s.log.Info("refusing connection (fault injection)", "remote", nc.RemoteAddr().String())
			_ = nc.Close()
			continue
		}
		c := newConn(s, nc)
		s.accepted.Add(1)
		s.mu.Lock()
		if !s.running {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.goFunc(c.serve)
	}
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// DropConnections closes every client connection at once, as a broker crash
// or network cut would; clients reconnect.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}
