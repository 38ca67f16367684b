package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Children caches a metric vector's children by a key the caller picks
// (its label values, or something cheaper to hash): a vec's
// WithLabelValues hashes and looks up every label on each call, which the
// hot paths (every request, every message) should not pay. The cache holds
// one entry per child made, so it grows exactly as the exported series do;
// keys must therefore be bounded like label values. Safe for concurrent
// use; build it with NewChildren.
type Children[K comparable, C any] struct {
	make   func(K) C
	series sync.Map // K -> C
}

// NewChildren returns a cache whose missing children make creates (by
// calling WithLabelValues on the vectors, typically).
func NewChildren[K comparable, C any](make func(K) C) *Children[K, C] {
	return &Children[K, C]{make: make}
}

// Get returns k's child, creating it on first use.
func (c *Children[K, C]) Get(k K) C {
	if v, ok := c.series.Load(k); ok {
		return v.(C)
	}
	v, _ := c.series.LoadOrStore(k, c.make(k))
	return v.(C)
}

// OrDiscard returns reg, or a registry of its own that nobody gathers when
// reg is nil. A component builds its metrics on what it returns, so its
// metrics always exist and record (unseen when no Registerer was given)
// and none of its methods needs an "if m == nil" guard.
func OrDiscard(reg prometheus.Registerer) prometheus.Registerer {
	if reg == nil {
		return prometheus.NewRegistry()
	}
	return reg
}

// Len is the number of children made so far.
func (c *Children[K, C]) Len() int {
	n := 0
	c.series.Range(func(any, any) bool { n++; return true })
	return n
}
