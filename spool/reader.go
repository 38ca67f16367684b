package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// Reader returns spooled records in append order, starting with the oldest
// unacknowledged one and skipping acknowledged ones. Reading does not
// acknowledge: call Spool.Ack once a record is safely elsewhere. Records read
// but not acknowledged come back from the next Reader (and after a restart).
//
// A Reader is for one goroutine; several Readers may share a Spool.
type Reader struct {
	s    *Spool
	seg  uint64 // segment of the next record
	idx  int    // index of the next record in seg
	f    *os.File
	fseg uint64
	buf  []byte
}

// NewReader returns a Reader positioned at the oldest unacknowledged record.
func (s *Spool) NewReader() *Reader {
	return &Reader{s: s}
}

// Next returns the next unacknowledged record, waiting for one to be
// appended if the Reader has caught up. It returns ErrClosed once Close has
// begun and ctx.Err() when ctx ends. A record whose bytes no longer
// verify yields an error wrapping ErrCorrupt together with its position; the
// Reader moves past it, and the caller decides whether to Ack it.
func (r *Reader) Next(ctx context.Context) (Pos, Record, error) {
	s := r.s
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Pos{}, Record{}, ErrClosed
		}
		i, _ := slices.BinarySearchFunc(s.segs, r.seg, func(g *segment, id uint64) int {
			switch {
			case g.id < id:
				return -1
			case g.id > id:
				return 1
			}
			return 0
		})
		if i < len(s.segs) {
			g := s.segs[i]
			if g.id != r.seg {
				r.seg, r.idx = g.id, 0
			}
			r.idx = max(r.idx, g.low)
			for r.idx < len(g.entries) && g.entries[r.idx].acked {
				r.idx++
			}
			if r.idx < len(g.entries) {
				e, path := g.entries[r.idx], g.path
				r.idx++
				s.mu.Unlock()
				pos := Pos{g.id, e.off}
				rec, err := r.read(g.id, path, e)
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed meanwhile: every record in it was acknowledged
				}
				return pos, rec, err
			}
			if i+1 < len(s.segs) || g.sealed {
				r.seg, r.idx = g.id+1, 0
				s.mu.Unlock()
				continue
			}
		}
		wait := s.notify
		s.mu.Unlock()
		select {
		case <-wait:
		case <-s.closing:
			return Pos{}, Record{}, ErrClosed
		case <-ctx.Done():
			return Pos{}, Record{}, ctx.Err()
		}
	}
}

func (r *Reader) read(id uint64, path string, e entry) (Record, error) {
	if r.f == nil || r.fseg != id {
		if r.f != nil {
			_ = r.f.Close()
			r.f = nil
		}
		f, err := os.Open(path)
		if err != nil {
			return Record{}, err
		}
		r.f, r.fseg = f, id
	}
	n := frameHeaderSize + int(e.n)
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := r.f.ReadAt(b, e.off); err != nil {
		return Record{}, fmt.Errorf("spool: read %d:%d: %w", id, e.off, err)
	}
	if !checkFrame(b[:frameHeaderSize], b[frameHeaderSize:]) || binary.LittleEndian.Uint32(b) != e.n {
		return Record{}, fmt.Errorf("%w: record %d:%d fails its checksum", ErrCorrupt, id, e.off)
	}
	var rec Record
	if err := rec.UnmarshalBinary(b[frameHeaderSize:]); err != nil {
		return Record{}, fmt.Errorf("spool: record %d:%d: %w", id, e.off, err)
	}
	return rec, nil
}

// Close releases the Reader's open file. It is idempotent.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Ack marks the record at pos as delivered. A segment file is deleted once
// every record in it is acknowledged and no more appends go to it.
// Acknowledgements become durable at the next Checkpoint; acknowledging the
// same record twice is fine.
func (s *Spool) Ack(pos Pos) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	i, found := slices.BinarySearchFunc(s.segs, pos.Segment, func(g *segment, id uint64) int {
		switch {
		case g.id < id:
			return -1
		case g.id > id:
			return 1
		}
		return 0
	})
	if !found {
		// Segments are only removed once fully acknowledged, and ids are
		// never reused: an older id that is gone was acknowledged.
		defer s.mu.Unlock()
		if pos.Segment != 0 && pos.Segment < s.nextID {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrUnknownPos, pos)
	}
	g := s.segs[i]
	j, found := slices.BinarySearchFunc(g.entries, pos.Offset, func(e entry, off int64) int {
		switch {
		case e.off < off:
			return -1
		case e.off > off:
			return 1
		}
		return 0
	})
	if !found {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownPos, pos)
	}
	if g.entries[j].acked {
		s.mu.Unlock()
		return nil
	}
	g.entries[j].acked = true
	g.acked++
	for g.low < len(g.entries) && g.entries[g.low].acked {
		g.low++
	}
	s.depth--
	s.ackDirty = true
	s.acked.Add(1)
	var gone []*segment
	if g.sealed && g.fullyAcked() {
		gone = s.unlinkLocked(g)
	}
	s.mu.Unlock()
	s.removeFiles(gone)
	return nil
}
