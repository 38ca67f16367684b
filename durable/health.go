package durable

import (
	"context"
	"fmt"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
)

// fullHold is how long a refusal for lack of room marks the spool full.
// Under a full disk, small appends may still fit between refusals; the
// spool counts as full until none was refused for this long.
const fullHold = 2 * time.Second

// ClusterHealth is one cluster's breaker state.
type ClusterHealth struct {
	Name  string
	State State
}

// Health is a snapshot for readiness endpoints and the console.
type Health struct {
	Clusters []ClusterHealth // primary first
	Spool    spool.Stats
	// SpoolFull is true when a spool append was refused for lack of room
	// (size limit or disk) in the last fullHold (2 s).
	SpoolFull bool
	Closed    bool
}

// Health returns the current state of the clusters and the spool.
func (s *Sender) Health() Health {
	full := s.spoolFullAt.Load()
	h := Health{Spool: s.spool.Stats(), Closed: s.closing.Load(),
		SpoolFull: full != 0 && time.Since(time.Unix(0, full)) < fullHold}
	for _, c := range s.clusters {
		h.Clusters = append(h.Clusters, ClusterHealth{Name: c.name, State: c.br.State()})
	}
	return h
}

// PrimaryOpen reports whether the primary cluster's circuit breaker is
// open: a cheap question (one lock), unlike Health, for the delay engine
// to ask per message.
func (s *Sender) PrimaryOpen() bool {
	return len(s.clusters) > 0 && s.clusters[0].br.State() == Open
}

// Ready is a readiness check (it fits proxy.Check): nil while the sidecar
// can make a message durable somewhere, that is a cluster is not open or
// the spool has room. Both clusters down with a working spool is degraded
// but ready: messages are answered "spooled". It fails when closed, or
// when every cluster is open and the spool is full.
func (s *Sender) Ready(context.Context) error {
	h := s.Health()
	if h.Closed {
		return ErrClosed
	}
	for _, c := range h.Clusters {
		if c.State != Open {
			return nil
		}
	}
	if h.SpoolFull {
		return fmt.Errorf("%w and every cluster is unavailable (%d messages spooled)", ErrSpoolFull, h.Spool.Depth)
	}
	return nil
}
