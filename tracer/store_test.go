package tracer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/tracer"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer/esfake"
	"github.com/pulsar-sidecar/pulsar-sidecar/tracer/storetest"
)

func openSQLite(t *testing.T) *tracer.SQLite {
	t.Helper()
	s, err := tracer.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "trace.db"))
	require.NoError(t, err)
	return s
}

func TestSQLiteContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tracer.Store { return openSQLite(t) })
}

// openElastic starts a fake cluster and a store on it, with fast retries.
func openElastic(t *testing.T, opts tracer.ElasticOptions) (*tracer.Elastic, *esfake.Server) {
	t.Helper()
	fake := esfake.RunT(t)
	if opts.Addresses == nil {
		opts.Addresses = []string{fake.URL()}
	}
	e := newElastic(t, opts)
	require.NoError(t, e.Start(t.Context()))
	return e, fake
}

func newElastic(t *testing.T, opts tracer.ElasticOptions) *tracer.Elastic {
	t.Helper()
	if opts.IndexPrefix == "" {
		opts.IndexPrefix = "test"
	}
	if opts.RetryMinBackoff == 0 {
		opts.RetryMinBackoff = time.Millisecond
		opts.RetryMaxBackoff = 5 * time.Millisecond
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	e, err := tracer.NewElastic(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func TestElasticContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tracer.Store {
		e, _ := openElastic(t, tracer.ElasticOptions{})
		return e
	})
}

// TestElasticIntegration runs the contract against a real cluster.
func TestElasticIntegration(t *testing.T) {
	url := os.Getenv("TRACE_ES_URL")
	if url == "" {
		t.Skip("TRACE_ES_URL is not set: the Elasticsearch store was checked against esfake only (set TRACE_ES_URL=http://host:9200 to run the contract against a real cluster)")
	}
	n := 0
	storetest.Run(t, func(t *testing.T) tracer.Store {
		n++
		prefix := fmt.Sprintf("tracer-it-%d-%d", time.Now().UnixNano(), n)
		e := newElastic(t, tracer.ElasticOptions{Addresses: []string{url}, IndexPrefix: prefix, Refresh: "wait_for",
			RetryMinBackoff: 50 * time.Millisecond, RetryMaxBackoff: time.Second})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		require.NoError(t, e.Start(ctx))
		t.Cleanup(func() {
			// Remove what the scenario wrote.
			_, _ = e.DeleteBefore(context.Background(), time.Now().AddDate(100, 0, 0))
		})
		return e
	})
}
