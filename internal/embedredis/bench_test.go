package embedredis

import (
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// The cost of the two whole-keyspace passes, for keyspaces of idempotency
// records (a hash of two fields with a TTL each).
func benchServer(b *testing.B, n int) *Server {
	s, err := Start(Options{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler), SnapshotInterval: time.Hour, Resolution: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	for i := range n {
		k := fmt.Sprintf("psc:idem:{dev}:order-%d", i)
		s.m.HSet(k, "uid", "01a1fe6b-9473-7e22-9d4f-3d7c230592fe", "fp", "5d41402abc4b2a76b9719d911017c592")
		s.m.SetTTL(k, time.Hour)
	}
	return s
}

// BenchmarkSweep: one TTL step (FastForward over every key).
func BenchmarkSweep(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := benchServer(b, n)
			for b.Loop() {
				s.sweep()
			}
		})
	}
}

// BenchmarkSave: one snapshot (copy under the gate, encode, write, fsync).
func BenchmarkSave(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := benchServer(b, n)
			for b.Loop() {
				if err := s.Save(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCopy: the part of a snapshot that holds every client's commands.
func BenchmarkCopy(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := benchServer(b, n)
			for b.Loop() {
				s.gate.Lock()
				s.copyLocked(0)
				s.gate.Unlock()
			}
		})
	}
}
