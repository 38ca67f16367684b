package tracer

import (
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// resumePoint is where the replayer stopped inside a segment.
type resumePoint struct {
	seq  uint64
	off  int64   // offset of the first record not fully stored
	left []Event // events of that record still to store; nil: all of it
}

func (p *Pipeline) signalReplay() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// errSinkDown stops a replay pass when the sink does not take a record.
var errSinkDown = errors.New("tracer: sink not accepting writes")

// runReplayer delivers the outbox to the sink, oldest record first, and
// backs off exponentially while the sink fails.
func (p *Pipeline) runReplayer() {
	backoff := p.opts.ReplayMinBackoff
	for {
		select {
		case <-p.stopReplay:
			return
		case <-p.wake:
		}
		for {
			err := p.replayAll()
			if err == nil {
				backoff = p.opts.ReplayMinBackoff
				break
			}
			if errors.Is(err, errSinkDown) {
				p.stalls.Add(1)
			} else {
				p.log.Error("trace outbox replay failed", "err", err)
			}
			t := time.NewTimer(backoff)
			select {
			case <-p.stopReplay:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, p.opts.ReplayMaxBackoff)
		}
	}
}

// replayAll replays segments until the outbox is empty. It returns
// errSinkDown when the sink refuses a record, or an outbox error.
func (p *Pipeline) replayAll() error {
	for {
		select {
		case <-p.stopReplay:
			return nil
		default:
		}
		seq, ok, err := p.ob.oldest()
		if err != nil || !ok {
			return err
		}
		if err := p.replaySegment(seq); err != nil {
			return err
		}
	}
}

func (p *Pipeline) replaySegment(seq uint64) error {
	if p.resume.seq != seq {
		p.resume = resumePoint{seq: seq}
	}
	r, err := openSegment(p.ob.path(seq), p.resume.off)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return p.ob.done(seq, false)
		}
		return err
	}
	for {
		if !p.waitBudget() {
			_ = r.close()
			return nil // stopping; p.resume says where to go on
		}
		start := r.off
		evs, err := r.next()
		if errors.Is(err, io.EOF) {
			_ = r.close()
			p.resume = resumePoint{}
			p.replayAt.Store(0)
			return p.ob.done(seq, false)
		}
		if err != nil {
			_ = r.close()
			p.c.corrupt.Add(1)
			p.replayAt.Store(0)
			p.log.Error("trace outbox segment unreadable; kept for inspection", "segment", p.ob.path(seq)+".corrupt", "offset", start, "err", err)
			p.resume = resumePoint{}
			return p.ob.done(seq, true)
		}
		if p.resume.left != nil && p.resume.off == start {
			evs = p.resume.left
		}
		if len(evs) > 0 {
			oldest := evs[0].Time.UnixMicro()
			for i := range evs {
				oldest = min(oldest, evs[i].Time.UnixMicro())
			}
			p.replayAt.Store(oldest)
		}
		ctx, cancel := context.WithTimeout(p.ctx, p.opts.WriteTimeout)
		werr := p.sinkWrite(ctx, evs)
		cancel()
		if retry := p.settle(evs, werr, &p.c.replayed, "replay"); len(retry) > 0 {
			_ = r.close()
			p.resume = resumePoint{seq: seq, off: start, left: retry}
			return errSinkDown
		}
		p.resume = resumePoint{seq: seq, off: r.off}
	}
}
