package tracer

import (
	"sync/atomic"
	"time"
)

// Stats counts what happened to recorded events. Every event given to Record
// ends up in exactly one of: Dropped (never accepted), Written, Rejected,
// SpillFailed, or the outbox, from which it later becomes Replayed or
// Rejected, or is kept in a corrupt segment. So once the outbox is empty:
//
//	Recorded == Written + Replayed + Rejected + SpillFailed
type Stats struct {
	Recorded      uint64 // accepted by Record (into the queue or the overflow buffer)
	Overflowed    uint64 // of Recorded, those that went through the overflow buffer
	DroppedFull   uint64 // refused by Record because the queue and overflow buffer were full
	DroppedClosed uint64 // refused by Record because the pipeline was closed
	Written       uint64 // stored by the sink on the direct path
	Spilled       uint64 // appended to the outbox
	Replayed      uint64 // stored by the sink from the outbox
	Rejected      uint64 // refused by the sink for good (e.g. Elasticsearch 400); logged
	SpillFailed   uint64 // lost because the outbox could not take them (full, disk error); logged
	Corrupt       uint64 // outbox records that could not be read; their segment is kept as .corrupt
	SinkFailures  uint64 // sink writes that failed in whole or in part
	Deferred      uint64 // of Spilled, those parked in the outbox by the ingest budget rather than a sink failure

	IngestCPU  time.Duration // CPU time spent in sink writes (see measureCPU)
	Lag        time.Duration // age of the oldest event waiting in the outbox; 0 when it is empty
	Throttled  bool          // the ingest budget is holding the sink back
	DeferLimit bool          // a deferral limit is reached: the sink runs at full speed
	// DeferLimitHits counts the times a deferral limit was reached.
	DeferLimitHits uint64

	QueueLen       int   // events waiting in the queue
	OverflowLen    int   // events waiting in the overflow buffer
	OutboxBytes    int64 // bytes waiting in the outbox
	OutboxSegments int   // segment files waiting in the outbox
}

// Dropped is every event Record refused.
func (s Stats) Dropped() uint64 { return s.DroppedFull + s.DroppedClosed }

type counters struct {
	recorded atomic.Uint64
	_        [56]byte // keep the hot counter on its own cache line
	overflowed,
	droppedFull,
	droppedClosed,
	written,
	spilled,
	replayed,
	rejected,
	spillFailed,
	corrupt,
	sinkFailures,
	deferred,
	ingestCPU atomic.Uint64 // nanoseconds
}

// Stats returns a snapshot of the counters.
func (p *Pipeline) Stats() Stats {
	bytes, segs := p.ob.size()
	now := p.now()
	limited, hits := p.gov.atLimit()
	return Stats{
		DeferLimitHits: hits,
		Deferred:       p.c.deferred.Load(),
		IngestCPU:      time.Duration(p.c.ingestCPU.Load()),
		Lag:            p.lag(now),
		Throttled:      p.gov.throttling(now),
		DeferLimit:     limited,
		Recorded:       p.c.recorded.Load(),
		Overflowed:     p.c.overflowed.Load(),
		DroppedFull:    p.c.droppedFull.Load(),
		DroppedClosed:  p.c.droppedClosed.Load(),
		Written:        p.c.written.Load(),
		Spilled:        p.c.spilled.Load(),
		Replayed:       p.c.replayed.Load(),
		Rejected:       p.c.rejected.Load(),
		SpillFailed:    p.c.spillFailed.Load(),
		Corrupt:        p.c.corrupt.Load(),
		SinkFailures:   p.c.sinkFailures.Load(),
		QueueLen:       len(p.queue),
		OverflowLen:    len(p.overflow),
		OutboxBytes:    bytes,
		OutboxSegments: segs,
	}
}
