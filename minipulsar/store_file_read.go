package minipulsar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// errNotIndexed: the store holds no record for the entry (never written,
// or its topic was deleted).
var errNotIndexed = errors.New("minipulsar: entry not in the store")

// index records that the next record of segment seg starts at off. Records
// of a segment carry consecutive ids, so the position in offs is the id.
func (tl *topicLog) index(seg uint64, off int64) {
	tl.idxMu.Lock()
	n := len(tl.segs)
	if n == 0 || tl.segs[n-1].first != seg {
		tl.segs = append(tl.segs, segIndex{first: seg})
		n++
	}
	tl.segs[n-1].offs = append(tl.segs[n-1].offs, uint32(off))
	tl.idxMu.Unlock()
}

func (tl *topicLog) closeReader() {
	tl.idxMu.Lock()
	if tl.rfile != nil {
		_ = tl.rfile.Close()
		tl.rfile = nil
	}
	tl.idxMu.Unlock()
}

// readEntry reads an entry's bytes back from its segment, checking the
// record's checksum. The broker calls it only for entries it was told are
// durable, so the record is complete on disk. Reads share one handle per
// topic and do not wait for the writer (they take idxMu, not mu).
func (fs *fileStore) readEntry(topic string, id uint64) ([]byte, error) {
	fs.mu.Lock()
	tl := fs.topics[topic]
	fs.mu.Unlock()
	if tl == nil {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, topic)
	}
	tl.idxMu.Lock()
	defer tl.idxMu.Unlock()
	i := sort.Search(len(tl.segs), func(i int) bool { return tl.segs[i].first > id }) - 1
	if i < 0 || id-tl.segs[i].first >= uint64(len(tl.segs[i].offs)) {
		return nil, fmt.Errorf("%w: entry %d of %s", errNotIndexed, id, topic)
	}
	seg := tl.segs[i]
	off := int64(seg.offs[id-seg.first])
	if tl.rfile == nil || tl.rseg != seg.first {
		if tl.rfile != nil {
			_ = tl.rfile.Close()
			tl.rfile = nil
		}
		f, err := os.Open(filepath.Join(tl.dir, segmentName(seg.first)))
		if err != nil {
			return nil, fmt.Errorf("minipulsar: read entry %d of %s: %w", id, topic, err)
		}
		tl.rfile, tl.rseg = f, seg.first
	}
	var head [recordHeaderSize]byte
	if _, err := tl.rfile.ReadAt(head[:], off); err != nil {
		return nil, fmt.Errorf("minipulsar: read entry %d of %s: %w", id, topic, err)
	}
	n := binary.LittleEndian.Uint32(head[:])
	if n < minPayloadSize || n > maxPayloadSize {
		return nil, fmt.Errorf("minipulsar: read entry %d of %s: %w: length %d", id, topic, errCorrupt, n)
	}
	b := make([]byte, recordHeaderSize+int(n))
	if _, err := tl.rfile.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("minipulsar: read entry %d of %s: %w", id, topic, err)
	}
	rec, _, err := readRecord(b)
	if err != nil {
		return nil, fmt.Errorf("minipulsar: read entry %d of %s: %w", id, topic, err)
	}
	if rec.id != id {
		return nil, fmt.Errorf("minipulsar: read entry %d of %s: %w: the record holds entry %d", id, topic, errCorrupt, rec.id)
	}
	return rec.data, nil
}
