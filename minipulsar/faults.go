package minipulsar

import (
	"sync"
	"time"
)

type faultAction int

const (
	faultNone faultAction = iota
	faultFail
	faultDelay
)

// faults holds injected failures. The zero value injects nothing.
type faults struct {
	mu            sync.Mutex
	refuseUntil   time.Time
	refuseLookups bool
	failSends     int
	delaySends    int
	delay         time.Duration
}

func (f *faults) refusing() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Now().Before(f.refuseUntil)
}

func (f *faults) lookupsRefused() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refuseLookups
}

func (f *faults) nextSend() (faultAction, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.failSends > 0:
		f.failSends--
		return faultFail, 0
	case f.delaySends > 0:
		f.delaySends--
		return faultDelay, f.delay
	}
	return faultNone, 0
}

// RefuseConnections makes the broker close every new connection at once for
// d (wall-clock time); existing connections are not touched.
func (s *Server) RefuseConnections(d time.Duration) {
	s.faults.mu.Lock()
	s.faults.refuseUntil = time.Now().Add(d)
	s.faults.mu.Unlock()
}

// RefuseLookups makes partitioned-metadata and lookup requests fail with
// ServiceNotReady while on is true.
func (s *Server) RefuseLookups(on bool) {
	s.faults.mu.Lock()
	s.faults.refuseLookups = on
	s.faults.mu.Unlock()
}

// FailNextSends makes the next n SEND commands fail with PersistenceError,
// as when the broker cannot write to storage: nothing is stored; the client
// closes the connection, reconnects and re-sends (each re-send counts against
// n). The application sees a delay, or a send timeout when the failures
// outlast its SendTimeout.
func (s *Server) FailNextSends(n int) {
	s.faults.mu.Lock()
	s.faults.failSends = n
	s.faults.mu.Unlock()
}

// DelayNextSends holds each of the next n SEND commands for d before storing
// it (the connection's later commands wait behind it, as on a slow broker).
func (s *Server) DelayNextSends(n int, d time.Duration) {
	s.faults.mu.Lock()
	s.faults.delaySends, s.faults.delay = n, d
	s.faults.mu.Unlock()
}

// UnloadTopic closes every producer and consumer of a topic (or of each
// partition of a partitioned topic) with CLOSE_PRODUCER / CLOSE_CONSUMER, as
// a broker does when it unloads a topic; clients reconnect.
func (s *Server) UnloadTopic(name string) error {
	tn, err := parseTopic(name)
	if err != nil {
		return err
	}
	var ts []*topic
	if n := s.partitionsOf(tn); n > 0 {
		for i := 0; i < n; i++ {
			if t, err := s.getTopic(tn.partition(i), false); err == nil {
				ts = append(ts, t)
			}
		}
	} else {
		t, err := s.getTopic(tn, false)
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	for _, t := range ts {
		t.mu.Lock()
		prods := make([]*producer, 0, len(t.producers))
		for p := range t.producers {
			prods = append(prods, p)
		}
		var cons []*consumer
		for _, sub := range t.subs {
			cons = append(cons, sub.consumers...)
		}
		t.mu.Unlock()
		for _, p := range prods {
			p.closeByBroker()
		}
		for _, c := range cons {
			c.closeByBroker()
		}
	}
	return nil
}
