package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Recovery reports what Open found in the directory.
type Recovery struct {
	Segments     int           // segment files kept
	Records      int           // valid records in them
	Acked        int           // of those, acknowledged according to the checkpoint
	Removed      int           // segment files removed: empty, or every record acknowledged
	Corrupt      []CorruptTail // tails set aside by this Open
	CorruptFiles int           // ".corrupt" files in the directory, older ones included
	// CheckpointProblem is set when the checkpoint could not be used; then
	// every record is replayed (the bad file is kept as checkpoint.corrupt).
	CheckpointProblem string
}

// CorruptTail describes bytes Open moved out of a segment: everything from
// the first frame that failed verification to the end of the file. In the
// newest segment a "truncated frame" is the normal trace of a crash during
// an append that was never acknowledged; anywhere else, or with another
// reason, it means the disk lost or damaged data.
type CorruptTail struct {
	Segment uint64
	Offset  int64  // where the valid prefix ends
	Bytes   int64  // how many bytes were moved
	Reason  string // e.g. "truncated frame", "checksum mismatch"
	File    string // the file now holding them
}

// recover rebuilds the in-memory state from the directory. It runs before
// any goroutine starts.
func (s *Spool) recover() error {
	if err := os.Remove(filepath.Join(s.dir, checkpointTmpName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	dirents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var ids []uint64
	var maxID uint64
	for _, de := range dirents {
		name := de.Name()
		if id, ok := parseAnyID(name); ok {
			maxID = max(maxID, id)
		}
		if id, ok := parseSegmentName(name); ok && de.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	rep := &s.recovery
	for _, id := range ids {
		seg, err := s.recoverSegment(id, rep)
		if err != nil {
			return err
		}
		if seg != nil {
			s.segs = append(s.segs, seg)
		}
	}

	c, err := readCheckpoint(s.dir)
	switch {
	case errors.Is(err, ErrUnsupported):
		return err
	case err != nil:
		// Replaying acknowledged records again is safe; skipping an
		// unacknowledged one is not. Keep the bad file for inspection.
		rep.CheckpointProblem = err.Error()
		s.log.Error("spool: checkpoint unusable, replaying every record", "error", err)
		if rerr := os.Rename(filepath.Join(s.dir, checkpointName), filepath.Join(s.dir, checkpointName+corruptSuffix)); rerr != nil {
			return fmt.Errorf("spool: set checkpoint aside: %w", rerr)
		}
		c = checkpoint{acks: map[uint64][]span{}}
	}
	s.nextID = max(maxID+1, c.next, 1)

	kept := s.segs[:0]
	var gone []*segment
	for _, g := range s.segs {
		for _, sp := range c.acks[g.id] {
			for i := sp.start; i < min(sp.end, len(g.entries)); i++ {
				g.entries[i].acked = true
				g.acked++
			}
		}
		for g.low < len(g.entries) && g.entries[g.low].acked {
			g.low++
		}
		rep.Records += len(g.entries)
		rep.Acked += g.acked
		if g.fullyAcked() {
			gone = append(gone, g)
			continue
		}
		kept = append(kept, g)
		s.diskBytes += g.size
		s.depth += len(g.entries) - g.acked
	}
	s.segs = kept
	rep.Removed += len(gone)
	rep.Segments = len(kept)
	s.removeFiles(gone)
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("spool: %w", err)
	}

	dirents, err = os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, de := range dirents {
		if strings.Contains(de.Name(), corruptSuffix) {
			rep.CorruptFiles++
		}
	}
	s.log.Info("spool: recovered",
		"segments", rep.Segments, "records", rep.Records, "acked", rep.Acked,
		"unacked", s.depth, "removed", rep.Removed, "corrupt_tails", len(rep.Corrupt),
		"corrupt_files", rep.CorruptFiles)
	return nil
}

// recoverSegment verifies one segment file and sets a bad tail aside. It
// returns nil when nothing valid is left in the file (which is then gone).
func (s *Spool) recoverSegment(id uint64, rep *Recovery) (*segment, error) {
	path := filepath.Join(s.dir, segmentName(id))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		// Created, but the header never reached the disk: no data in it.
		rep.Removed++
		return nil, os.Remove(path)
	}
	res, err := scanSegment(f, size, id)
	if err != nil {
		return nil, fmt.Errorf("spool: segment %d: %w", id, err)
	}
	if res.end < size {
		tail, err := s.setAside(f, path, res.end, size)
		if err != nil {
			return nil, fmt.Errorf("spool: segment %d: set aside corrupt tail: %w", id, err)
		}
		ct := CorruptTail{Segment: id, Offset: res.end, Bytes: size - res.end, Reason: res.reason, File: tail}
		rep.Corrupt = append(rep.Corrupt, ct)
		s.log.Error("spool: corrupt segment tail set aside",
			"segment", id, "offset", ct.Offset, "bytes", ct.Bytes,
			"reason", ct.Reason, "file", ct.File, "records_kept", len(res.entries))
	}
	if len(res.entries) == 0 {
		if res.end > 0 { // only the header is left
			rep.Removed++
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("spool: %w", err)
			}
		}
		return nil, nil
	}
	return &segment{id: id, path: path, entries: res.entries, size: res.end, sealed: true}, nil
}

// setAside moves bytes [end, size) of the segment into a new ".corrupt" file
// and only then truncates the segment. When end is 0 the whole file is
// renamed instead.
func (s *Spool) setAside(f *os.File, path string, end, size int64) (string, error) {
	var dst string
	for n := 0; ; n++ {
		dst = path + corruptSuffix
		if n > 0 {
			dst += "." + strconv.Itoa(n)
		}
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return "", err
		}
	}
	if end == 0 {
		if err := os.Rename(path, dst); err != nil {
			return "", err
		}
		return dst, syncDir(s.dir)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, io.NewSectionReader(f, end, size-end))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err == nil {
		err = f.Truncate(end)
	}
	if err == nil {
		err = f.Sync()
	}
	return dst, err
}
