package minipulsar

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// load reads meta.json and every topic's directory, repairing what a crash
// or damage left: a torn tail is truncated (warning), damaged records and
// whatever follows them are set aside as *.corrupt (error), directories of
// deleted topics are removed. Only unreadable metadata or an I/O error fails
// it. The caller holds the data directory's lock.
func (fs *fileStore) load() (*snapshot, error) {
	meta, found, err := readMeta(fs.dir)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(fs.dir, metaName+".tmp"))
	dirs, err := os.ReadDir(fs.topicsDir())
	if err != nil {
		return nil, fmt.Errorf("minipulsar: %w", err)
	}
	live := map[string]bool{}
	for _, mt := range meta.Topics {
		live[strconv.FormatUint(mt.Ledger, 10)] = true
	}
	removed := false
	for _, d := range dirs {
		if live[d.Name()] {
			continue
		}
		if _, err := strconv.ParseUint(d.Name(), 10, 64); err != nil || !d.IsDir() {
			fs.log.Warn("unexpected file in the topics directory, left alone", "name", d.Name())
			continue
		}
		if !found {
			return nil, fmt.Errorf("%w: %s is missing but %s holds topic data", ErrCorruptDataDir, metaName, fs.topicsDir())
		}
		fs.log.Info("removing the files of a deleted topic", "dir", d.Name())
		if err := os.RemoveAll(filepath.Join(fs.topicsDir(), d.Name())); err != nil {
			return nil, fmt.Errorf("minipulsar: %w", err)
		}
		removed = true
	}
	if removed {
		if err := syncDir(fs.topicsDir()); err != nil {
			return nil, fmt.Errorf("minipulsar: %w", err)
		}
	}

	snap := &snapshot{nextLedger: max(meta.NextLedger, 1), partitioned: maps.Clone(meta.Partitioned)}
	for _, name := range slices.Sorted(maps.Keys(meta.Topics)) {
		ledger := meta.Topics[name].Ledger
		snap.nextLedger = max(snap.nextLedger, ledger+1)
		st, tl, err := fs.loadTopic(name, ledger)
		if err != nil {
			return nil, err
		}
		snap.topics = append(snap.topics, st)
		fs.topics[name] = tl
	}
	meta.NextLedger = snap.nextLedger
	fs.meta = meta
	return snap, nil
}

// loadTopic reads one topic's segments and cursors.
func (fs *fileStore) loadTopic(name string, ledger uint64) (storedTopic, *topicLog, error) {
	tl := fs.newTopicLog(name, ledger)
	st := storedTopic{name: name, ledger: ledger, cursors: map[string]cursorState{}, lastSeq: map[string]int64{}}
	files, err := os.ReadDir(tl.dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return st, tl, nil // created, never written
	}
	if err != nil {
		return st, nil, fmt.Errorf("minipulsar: %w", err)
	}
	tl.dirReady = true
	var segs []uint64
	for _, f := range files {
		if first, ok := parseSegmentName(f.Name()); ok {
			segs = append(segs, first)
		}
	}
	slices.Sort(segs)
	_ = os.Remove(filepath.Join(tl.dir, cursorsName+".tmp"))

	lastSeq := map[string]*int64{}
	var (
		seg      uint64
		n        uint64 // records loaded
		parseErr error
	)
	onRecord := func(r logRecord, off int) {
		tl.index(seg, int64(off))
		n++
		if !fs.cfg.metaOnly {
			st.entries = append(st.entries, r.data)
		} else if md, _, err := parsePayload(r.data); err != nil {
			parseErr = cmp.Or(parseErr, fmt.Errorf("minipulsar: stored entry %d of %s: %w", r.id, name, err))
		} else {
			e, at := newEntry(r.data, md)
			e.data, e.flags = nil, e.flags|entryEvicted
			st.metas = append(st.metas, e)
			if at > 0 {
				if st.delays == nil {
					st.delays = map[uint64]int64{}
				}
				st.delays[r.id] = at
			}
		}
		if p := lastSeq[string(r.producer)]; p != nil {
			*p = max(*p, r.lastSeq)
		} else {
			v := r.lastSeq
			lastSeq[string(r.producer)] = &v
		}
	}
	if len(segs) > 0 {
		st.first = segs[0]
	}
	next := st.first
	for i, first := range segs {
		log := fs.log.With("topic", name, "segment", filepath.Join(tl.dir, segmentName(first)))
		if first != next {
			log.Error("segment does not follow the previous one; setting it and later segments aside", "first", first, "want", next)
			if err := fs.setAside(tl, segs[i:], -1, nil); err != nil {
				return st, nil, err
			}
			break
		}
		path := filepath.Join(tl.dir, segmentName(first))
		seg = first
		buf, err := os.ReadFile(path)
		if err != nil {
			return st, nil, fmt.Errorf("minipulsar: %w", err)
		}
		valid, n, scanErr := scanSegment(buf, ledger, first, onRecord)
		next = n
		if scanErr == nil {
			tl.hasSeg, tl.segFirst, tl.segSize = true, first, int64(len(buf))
			continue
		}
		if i == len(segs)-1 && !validRecordAfter(buf, valid, next) {
			// A torn tail: the crash hit an append that was never
			// acknowledged (done runs after fsync).
			log.Warn("truncating a torn tail", "offset", valid, "bytes", len(buf)-valid, "err", scanErr)
			if valid < segmentHeaderSize {
				if err := os.Remove(path); err != nil {
					return st, nil, fmt.Errorf("minipulsar: %w", err)
				}
				if err := syncDir(tl.dir); err != nil {
					return st, nil, fmt.Errorf("minipulsar: %w", err)
				}
				break
			}
			if err := truncateFile(path, int64(valid)); err != nil {
				return st, nil, fmt.Errorf("minipulsar: %w", err)
			}
			tl.hasSeg, tl.segFirst, tl.segSize = true, first, int64(valid)
			break
		}
		log.Error("corrupt segment: keeping the entries before the damage, setting the rest aside",
			"offset", valid, "bytes", len(buf)-valid, "entry", next, "laterSegments", len(segs)-i-1, "err", scanErr)
		if err := fs.setAside(tl, segs[i:], valid, buf); err != nil {
			return st, nil, err
		}
		if valid >= segmentHeaderSize {
			tl.hasSeg, tl.segFirst, tl.segSize = true, first, int64(valid)
		}
		break
	}
	for p, v := range lastSeq {
		st.lastSeq[p] = *v
	}
	if parseErr != nil {
		return st, nil, parseErr
	}
	tl.nextID = st.first + n

	cursors, err := fs.readCursors(tl)
	if err != nil {
		return st, nil, err
	}
	for sub, cs := range cursors {
		st.cursors[sub] = clampCursor(fs, name, sub, cs, tl.nextID)
		tl.cursors[sub] = st.cursors[sub]
	}
	return st, tl, nil
}

// setAside moves damaged data out of the way, so that appends go on after
// the valid prefix and nothing is lost without a trace: segs[0] keeps its
// first valid bytes (its rest goes to a .corrupt file; valid < 0 means the
// whole file goes) and every later segment is renamed to .corrupt.
func (fs *fileStore) setAside(tl *topicLog, segs []uint64, valid int, buf []byte) error {
	for i, first := range segs {
		path := filepath.Join(tl.dir, segmentName(first))
		if i == 0 && valid >= segmentHeaderSize {
			if err := writeFileSync(corruptName(path), buf[valid:]); err != nil {
				return fmt.Errorf("minipulsar: set aside: %w", err)
			}
			if err := truncateFile(path, int64(valid)); err != nil {
				return fmt.Errorf("minipulsar: set aside: %w", err)
			}
			continue
		}
		if err := os.Rename(path, corruptName(path)); err != nil {
			return fmt.Errorf("minipulsar: set aside: %w", err)
		}
	}
	if err := syncDir(tl.dir); err != nil {
		return fmt.Errorf("minipulsar: %w", err)
	}
	return nil
}

// readCursors loads cursors.json; a damaged one is set aside (its
// subscriptions then start again from the beginning, never losing messages).
func (fs *fileStore) readCursors(tl *topicLog) (map[string]cursorState, error) {
	path := filepath.Join(tl.dir, cursorsName)
	b, err := os.ReadFile(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("minipulsar: %w", err)
	}
	var cs map[string]cursorState
	if err := json.Unmarshal(b, &cs); err != nil {
		aside := corruptName(path)
		fs.log.Error("corrupt cursors file set aside; the topic's subscriptions are lost", "topic", tl.name, "file", aside, "err", err)
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("minipulsar: set aside: %w", rerr)
		}
		return nil, nil
	}
	return cs, nil
}

// clampCursor keeps a cursor inside the entries that survived: after damage
// was set aside a cursor may point past them, and new entries reuse those
// ids.
func clampCursor(fs *fileStore, topic, sub string, cs cursorState, next uint64) cursorState {
	atOrPast := func(id uint64) bool { return id >= next }
	if cs.AckedUpTo <= next && !slices.ContainsFunc(cs.Acked, atOrPast) && !anyKeyAtLeast(cs.Partial, next) {
		return cs
	}
	fs.log.Warn("cursor points past the stored entries; moved back", "topic", topic, "subscription", sub, "ackedUpTo", cs.AckedUpTo, "entries", next)
	cs.AckedUpTo = min(cs.AckedUpTo, next)
	cs.Acked = slices.DeleteFunc(slices.Clone(cs.Acked), atOrPast)
	cs.Partial = maps.Clone(cs.Partial)
	maps.DeleteFunc(cs.Partial, func(id uint64, _ []int64) bool { return id >= next })
	return cs
}

func anyKeyAtLeast(m map[uint64][]int64, v uint64) bool {
	for k := range m {
		if k >= v {
			return true
		}
	}
	return false
}
