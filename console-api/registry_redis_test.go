package consoleapi

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
)

func newTestRegistry(t *testing.T, srv *testredis.Server, boot RegistryDoc, edit func(*RedisRegistryOptions)) *RedisRegistry {
	t.Helper()
	rdb := srv.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	opts := RedisRegistryOptions{Client: rdb, Bootstrap: boot, ReloadInterval: 20 * time.Millisecond}
	if edit != nil {
		edit(&opts)
	}
	r, err := NewRedisRegistry(opts)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(r.Close)
	return r
}

func addApp(r *RedisRegistry, name string) error {
	return r.mutate(context.Background(), func(doc *RegistryDoc) (*AuditEntry, error) {
		doc.Apps = append(doc.Apps, StoredApp{App: App{Name: name}})
		return &AuditEntry{Actor: "test", Action: "app.create", Kind: "app", Object: name}, nil
	})
}

// The bootstrap is written once: a second registry (another replica, or
// a restart with another configuration) keeps what Redis holds.
func TestRedisRegistryBootstrapOnce(t *testing.T) {
	srv := testredis.Start(t)
	one := RegistryDoc{Apps: []StoredApp{{App: App{Name: "one"}, Secrets: []StoredToken{{ID: "config", SHA256: "aa"}}}}}
	r1 := newTestRegistry(t, srv, one, nil)
	require.Len(t, r1.Snapshot().Doc.Apps, 1)
	two := RegistryDoc{Apps: []StoredApp{{App: App{Name: "two"}}}}
	r2 := newTestRegistry(t, srv, two, nil)
	require.Equal(t, []string{"one"}, appNames(r2.Snapshot()))
	entries, _, err := r2.Audit(context.Background(), AuditQuery{Limit: 10})
	require.NoError(t, err)
	require.Len(t, entries, 1, "one bootstrap entry")
	require.NotContains(t, string(entries[0].After), `"aa"`, "no token hash in the log")

	_, err = NewRedisRegistry(RedisRegistryOptions{Client: srv.Client(), Bootstrap: RegistryDoc{Apps: []StoredApp{{App: App{Name: ""}}}}})
	require.ErrorIs(t, err, ErrInvalidRegistry)
}

func appNames(s *RegistrySnapshot) []string {
	var out []string
	for _, a := range s.Doc.Apps {
		out = append(out, a.Name)
	}
	return out
}

// Concurrent writers on two replicas lose nothing (the version check
// retries), each sees the other's writes within the reload interval, and
// OnChange gets every new snapshot in version order.
func TestRedisRegistryConcurrentWrites(t *testing.T) {
	srv := testredis.Start(t)
	var seen atomic.Int64
	var versions []int64
	var mu sync.Mutex
	r1 := newTestRegistry(t, srv, RegistryDoc{}, func(o *RedisRegistryOptions) {
		o.OnChange = func(s *RegistrySnapshot) {
			mu.Lock()
			versions = append(versions, s.Version)
			mu.Unlock()
			seen.Store(int64(len(s.Doc.Apps)))
		}
	})
	r2 := newTestRegistry(t, srv, RegistryDoc{}, nil)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		r := r1
		if i%2 == 1 {
			r = r2
		}
		wg.Go(func() { require.NoError(t, addApp(r, fmt.Sprintf("app%02d", i))) })
	}
	wg.Wait()
	require.Eventually(t, func() bool { return seen.Load() == n }, 2*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(r2.Snapshot().Doc.Apps) == n }, 2*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(versions); i++ {
		require.Greater(t, versions[i], versions[i-1], "versions only go up")
	}
	entries, _, err := r1.Audit(context.Background(), AuditQuery{Kind: "app", Limit: 100})
	require.NoError(t, err)
	require.Len(t, entries, n, "one audit entry per write")
}

// The audit log keeps AuditCap entries, the newest; pages skip nothing.
func TestRedisRegistryAuditCap(t *testing.T) {
	srv := testredis.Start(t)
	r := newTestRegistry(t, srv, RegistryDoc{}, func(o *RedisRegistryOptions) { o.AuditCap = 5 })
	for i := range 8 {
		require.NoError(t, addApp(r, fmt.Sprintf("a%d", i)))
	}
	n, err := srv.Client().LLen(context.Background(), r.auditKey()).Result()
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	var got []string
	cursor := ""
	for {
		page, next, err := r.Audit(context.Background(), AuditQuery{Limit: 2, Cursor: cursor})
		require.NoError(t, err)
		for _, e := range page {
			got = append(got, e.Object)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, []string{"a7", "a6", "a5", "a4", "a3"}, got)
}

// An expired token leaves the document at the next write.
func TestRedisRegistryPrunesExpiredTokens(t *testing.T) {
	srv := testredis.Start(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	boot := RegistryDoc{Apps: []StoredApp{{App: App{Name: "a"}, Secrets: []StoredToken{
		{ID: "old", SHA256: "11", ExpiresAt: &past}, {ID: "grace", SHA256: "22", ExpiresAt: &future}, {ID: "new", SHA256: "33"}}}}}
	r := newTestRegistry(t, srv, boot, func(o *RedisRegistryOptions) { o.Now = clock })
	require.NoError(t, addApp(r, "b"))
	app, ok := r.Snapshot().App("a")
	require.True(t, ok)
	var ids []string
	for _, tk := range app.Tokens {
		ids = append(ids, tk.ID)
	}
	require.Equal(t, []string{"grace", "new"}, ids)
}
