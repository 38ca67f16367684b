// Package embedredis is the embedded mode's in-process Redis: miniredis
// (alicebob/miniredis, which runs the sidecar's Lua scripts) made fit to
// hold the sidecar's state across time and restarts.
//
//   - TTLs run in real time. miniredis moves TTLs only when told
//     (FastForward); a sweeper tells it the real time elapsed every
//     Options.Resolution (100 ms). TTLs so move in steps: a key goes
//     within one step of its TTL, earlier or later (a key set just before
//     a step is charged the whole step). A sweep visits every key
//     (miniredis keeps no expiry index: about 11 ms for 10,000 keys on a
//     2-core machine, BenchmarkSweep), so the sweeper waits at least 20
//     sweeps' time between sweeps: expiry never takes more than 5% of a
//     core, and past about 5,000 keys the steps, and so the error, grow
//     with the keyspace (about 0.2 s at 10,000 keys, seconds at 100,000).
//   - The keyspace is kept in Options.Dir: written (fsynced, atomic
//     rename) every Options.SnapshotInterval and on Close, loaded on
//     Start. A clean stop loses nothing; a crash loses at most the writes
//     of the last interval. The format is in snapshot.go; a file that does
//     not decode is moved aside (logged at ERROR) and the server starts
//     empty.
//   - A snapshot is consistent across keys: Hook, added to every client
//     of the sidecar, holds each command and pipeline under a read lock
//     that the snapshot takes exclusively while it copies the keyspace
//     (Lua scripts that write several keys are never seen half done). The
//     copy holds commands about 13 ms for 10,000 keys (BenchmarkCopy);
//     encoding and the fsync happen after it.
//     Clients without the hook (redis-cli on Addr) are not held.
//
// docs/adr/080-embedded-redis.md has the reasoning and what was rejected.
package embedredis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// File is the snapshot's name in Options.Dir.
const File = "snapshot.psr"

// Options configure a Server. The zero value is an in-memory server with
// real-time TTLs.
type Options struct {
	// Addr is the listen address (default 127.0.0.1:0).
	Addr string
	// Dir keeps the snapshot; empty keeps nothing across a restart.
	Dir string
	// SnapshotInterval is the longest time between snapshots, the window a
	// crash can lose (default 1 s).
	SnapshotInterval time.Duration
	// Resolution is how often TTLs move (default 100 ms).
	Resolution time.Duration
	// DB is the database that is kept (the sidecar's redis.db).
	DB     int
	Logger *slog.Logger
}

// Server is a started embedded Redis.
type Server struct {
	opts Options
	m    *miniredis.Miniredis
	log  *slog.Logger
	path string

	// gate: every hooked client command holds it shared; a snapshot's copy
	// holds it exclusively.
	gate sync.RWMutex

	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	mu        sync.Mutex // serialises saves (the sweeper's and Close's)
	lastSweep time.Time
	saveFail  bool // the last periodic save failed (logged once)
}

// Start loads the snapshot in opts.Dir, if any, and starts the server and
// its sweeper.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.SnapshotInterval <= 0 {
		opts.SnapshotInterval = time.Second
	}
	if opts.Resolution <= 0 {
		opts.Resolution = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, m: miniredis.NewMiniRedis(), log: opts.Logger.With("component", "embedded-redis"),
		quit: make(chan struct{}), done: make(chan struct{})}
	s.m.Select(opts.DB)
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("embedredis: data dir: %w", err)
		}
		s.path = filepath.Join(opts.Dir, File)
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	if err := s.m.StartAddr(opts.Addr); err != nil {
		return nil, fmt.Errorf("embedredis: start: %w", err)
	}
	s.lastSweep = time.Now()
	go s.run()
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.m.Addr() }

// Close stops the sweeper, writes a last snapshot (when a Dir is set) and
// stops the server. Call it after the sidecar's clients stopped writing.
// Idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.done
		if s.path != "" {
			s.closeErr = s.Save()
		}
		s.m.Close()
	})
	return s.closeErr
}

// Hook returns the go-redis hook that lets snapshots see a consistent
// keyspace. Add it to every client of the server (client.AddHook).
func (s *Server) Hook() redis.Hook { return gateHook{s} }

type gateHook struct{ s *Server }

var _ redis.Hook = gateHook{}

func (gateHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// gated marks a context whose command already holds the gate: go-redis
// runs a new connection's handshake (HELLO, SELECT) through the hooks
// inside the command that dialled it, and a second RLock behind a waiting
// snapshot would deadlock.
type gated struct{}

func (h gateHook) enter(ctx context.Context) (context.Context, func()) {
	if ctx.Value(gated{}) != nil {
		return ctx, func() {}
	}
	h.s.gate.RLock()
	return context.WithValue(ctx, gated{}, true), h.s.gate.RUnlock
}

func (h gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		ctx, exit := h.enter(ctx)
		defer exit()
		return next(ctx, cmd)
	}
}

func (h gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		ctx, exit := h.enter(ctx)
		defer exit()
		return next(ctx, cmds)
	}
}

// run is the sweeper: it moves TTLs by the real time elapsed and saves a
// snapshot every SnapshotInterval.
func (s *Server) run() {
	defer close(s.done)
	wait := s.opts.Resolution
	lastSave := time.Now()
	for {
		t := time.NewTimer(wait)
		select {
		case <-s.quit:
			t.Stop()
			return
		case <-t.C:
		}
		took := s.sweep()
		wait = max(s.opts.Resolution, 20*took)
		if s.path != "" && time.Since(lastSave) >= s.opts.SnapshotInterval {
			lastSave = time.Now()
			err := s.Save()
			switch {
			case err != nil && !s.saveFail:
				s.log.Error("embedded redis snapshot failed: a crash now loses what was written since the last one", "path", s.path, "err", err)
			case err == nil && s.saveFail:
				s.log.Info("embedded redis snapshot written again", "path", s.path)
			}
			s.saveFail = err != nil
		}
	}
}

// sweep moves every TTL by the time elapsed since the last sweep and
// reports how long that took.
func (s *Server) sweep() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	s.m.FastForward(start.Sub(s.lastSweep))
	s.lastSweep = start
	return time.Since(start)
}

// Save writes a snapshot of the keyspace now.
func (s *Server) Save() error {
	if s.path == "" {
		return errors.New("embedredis: no data dir")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	// TTLs as of now, so the absolute expiries written are right.
	s.m.FastForward(now.Sub(s.lastSweep))
	s.lastSweep = now
	s.gate.Lock()
	snap, skipped := s.copyLocked(now.UnixMilli())
	s.gate.Unlock()
	if skipped > 0 {
		s.log.Warn("embedded redis keys of types the snapshot does not keep were left out", "keys", skipped)
	}
	if err := writeFile(s.path, Encode(snap)); err != nil {
		return fmt.Errorf("embedredis: write snapshot: %w", err)
	}
	return nil
}

// copyLocked copies the keyspace; the caller holds gate exclusively.
func (s *Server) copyLocked(now int64) (*Snapshot, int) {
	m := s.m
	keys := m.Keys()
	snap := &Snapshot{SavedAt: now, Entries: make([]Entry, 0, len(keys))}
	skipped := 0
	for _, k := range keys {
		e := Entry{Key: k}
		if ttl := m.TTL(k); ttl > 0 {
			e.ExpireAt = now + max(ttl.Milliseconds(), 1)
		}
		var err error
		switch m.Type(k) {
		case "string":
			e.Kind = KindString
			var v string
			v, err = m.Get(k)
			e.Values = []string{v}
		case "hash":
			e.Kind = KindHash
			var fields []string
			fields, err = m.HKeys(k)
			for _, f := range fields {
				e.Values = append(e.Values, f, m.HGet(k, f))
			}
		case "set":
			e.Kind = KindSet
			e.Values, err = m.Members(k)
		case "zset":
			e.Kind = KindZSet
			var ss map[string]float64
			ss, err = m.SortedSet(k)
			e.Values = make([]string, 0, len(ss))
			for mem := range ss {
				e.Values = append(e.Values, mem)
			}
			slices.Sort(e.Values)
			for _, mem := range e.Values {
				e.Scores = append(e.Scores, ss[mem])
			}
		case "list":
			e.Kind = KindList
			e.Values, err = m.List(k)
		default:
			skipped++
			continue
		}
		if err != nil || len(e.Values) == 0 {
			skipped++
			continue
		}
		snap.Entries = append(snap.Entries, e)
	}
	return snap, skipped
}

// load reads the snapshot into the (not yet started) server. A missing
// file is a first start; a file that does not decode is renamed to
// <File>.corrupt-<time> and reported, and the server starts empty; a file
// that cannot be read fails the start.
func (s *Server) load() error {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedredis: read snapshot: %w", err)
	}
	snap, err := Decode(data)
	if err != nil {
		aside := s.path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000Z")
		if rerr := os.Rename(s.path, aside); rerr != nil {
			return fmt.Errorf("embedredis: snapshot %s does not decode (%w) and cannot be moved aside: %w", s.path, err, rerr)
		}
		s.log.Error("embedded redis snapshot does not decode: moved aside, starting with an empty keyspace; idempotency keys, wheel messages and subscription registrations it held are not restored",
			"path", s.path, "movedTo", aside, "err", err)
		return nil
	}
	now := time.Now().UnixMilli()
	loaded, expired := 0, 0
	for _, e := range snap.Entries {
		if e.ExpireAt != 0 && e.ExpireAt <= now {
			expired++
			continue
		}
		if err := s.put(&e); err != nil {
			return fmt.Errorf("embedredis: restore %q: %w", e.Key, err)
		}
		if e.ExpireAt != 0 {
			s.m.SetTTL(e.Key, time.Duration(e.ExpireAt-now)*time.Millisecond)
		}
		loaded++
	}
	s.log.Info("embedded redis snapshot loaded", "path", s.path, "keys", loaded, "expiredWhileDown", expired,
		"savedAt", time.UnixMilli(snap.SavedAt).UTC().Format(time.RFC3339Nano))
	return nil
}

func (s *Server) put(e *Entry) error {
	m := s.m
	var err error
	switch e.Kind {
	case KindString:
		err = m.Set(e.Key, e.Values[0])
	case KindHash:
		m.HSet(e.Key, e.Values...)
	case KindSet:
		_, err = m.SAdd(e.Key, e.Values...)
	case KindZSet:
		for i, mem := range e.Values {
			if _, err = m.ZAdd(e.Key, e.Scores[i], mem); err != nil {
				break
			}
		}
	case KindList:
		_, err = m.Push(e.Key, e.Values...)
	default:
		err = fmt.Errorf("unknown kind %v", e.Kind)
	}
	return err
}
