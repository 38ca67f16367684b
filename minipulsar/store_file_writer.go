package minipulsar

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// maxParallelFsyncs bounds the fsyncs one group commit runs at once when it
// touched several topics. Concurrent fsyncs share the file system's journal
// commits, so a group over many topics costs little more than one over one.
const maxParallelFsyncs = 16

// maxKeptBuffer is the largest per-topic encode buffer kept between groups.
const maxKeptBuffer = 1 << 20

// writeLoop is the group-commit writer. It takes every queued append at
// once, writes each topic's share to its active segment, fsyncs each touched
// file once and passes the group to the completer, which runs the done
// callbacks in order while the writer goes on with the appends that queued up
// during the fsync. It returns once the store is closed and the queue empty.
func (fs *fileStore) writeLoop(completions chan<- []*appendReq) {
	defer close(completions)
	fs.mu.Lock()
	quit := fs.quit
	fs.mu.Unlock()
	for {
		fs.mu.Lock()
		batch := fs.queue
		fs.queue = nil
		closed := fs.closed
		fs.mu.Unlock()
		if len(batch) > 0 {
			fs.commit(batch)
			completions <- batch
			continue
		}
		if closed {
			return
		}
		select {
		case <-fs.wake:
		case <-quit:
		}
	}
}

// commit writes and fsyncs one group and sets each append's err.
func (fs *fileStore) commit(batch []*appendReq) {
	fs.batchNo++
	touched := fs.touched[:0]
	for _, r := range batch {
		if r.err != nil {
			continue
		}
		tl := r.tl
		if tl.batch != fs.batchNo {
			tl.batch, tl.reqs, tl.batchErr = fs.batchNo, tl.reqs[:0], nil
			touched = append(touched, tl)
		}
		tl.reqs = append(tl.reqs, r)
	}
	for _, tl := range touched {
		tl.mu.Lock()
		tl.batchErr = fs.writeTopic(tl)
		tl.mu.Unlock()
	}
	fs.syncTopics(touched)
	for _, r := range batch {
		if r.err == nil {
			r.err = r.tl.batchErr
		}
	}
	for i, tl := range touched {
		clear(tl.reqs)
		tl.reqs = tl.reqs[:0]
		tl.lastUsed = fs.batchNo
		touched[i] = nil
	}
	fs.touched = touched[:0]
	fs.batches.Add(1)
	fs.evict()
}

// writeTopic appends tl.reqs to the topic's segments, starting a new
// segment when the active one is full. The caller holds tl.mu.
func (fs *fileStore) writeTopic(tl *topicLog) error {
	if tl.deleted {
		return fmt.Errorf("%w: %s", errTopicDeleted, tl.name)
	}
	if tl.failed != nil {
		return tl.failed
	}
	buf := tl.buf[:0]
	for _, r := range tl.reqs {
		size := int64(recordSize(r.producer, r.data))
		pending := tl.segSize + int64(len(buf))
		if !tl.hasSeg || (pending+size > fs.cfg.segmentSize && pending > segmentHeaderSize) {
			if err := fs.rollSegment(tl, buf, r.id); err != nil {
				return fs.failTopic(tl, err)
			}
			buf = appendSegmentHeader(buf[:0], tl.ledger, r.id)
		}
		tl.index(tl.segFirst, tl.segSize+int64(len(buf)))
		buf = appendRecord(buf, r.id, r.lastSeq, r.producer, r.data)
	}
	err := fs.writeActive(tl, buf)
	tl.buf = nil
	if cap(buf) <= maxKeptBuffer {
		tl.buf = buf[:0]
	}
	if err != nil {
		return fs.failTopic(tl, err)
	}
	return nil
}

// rollSegment completes the active segment (writes pending, fsyncs, closes),
// so that only the last segment can ever have a torn tail, and creates the
// next one, whose first entry is first. The caller holds tl.mu.
func (fs *fileStore) rollSegment(tl *topicLog, pending []byte, first uint64) error {
	if tl.hasSeg {
		if err := fs.writeActive(tl, pending); err != nil {
			return err
		}
		if tl.file != nil {
			if err := tl.file.Sync(); err != nil {
				return err
			}
			fs.fsyncs.Add(1)
			if err := tl.file.Close(); err != nil {
				return err
			}
			tl.file = nil
			delete(fs.open, tl)
		}
	}
	if err := fs.ensureDir(tl); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(tl.dir, segmentName(first)), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	tl.file, tl.hasSeg, tl.segFirst, tl.segSize, tl.newSeg = f, true, first, 0, true
	fs.open[tl] = struct{}{}
	return nil
}

// writeActive appends b to the active segment, opening it if needed. The
// caller holds tl.mu.
func (fs *fileStore) writeActive(tl *topicLog, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if tl.file == nil {
		f, err := os.OpenFile(filepath.Join(tl.dir, segmentName(tl.segFirst)), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		tl.file = f
		fs.open[tl] = struct{}{}
	}
	n, err := tl.file.Write(b)
	tl.segSize += int64(n)
	return err
}

// failTopic makes a write error sticky: what reached the file is unknown,
// so nothing more is appended to this topic until the next open, which
// truncates any torn tail. The caller holds tl.mu.
func (fs *fileStore) failTopic(tl *topicLog, err error) error {
	if tl.failed == nil {
		tl.failed = fmt.Errorf("minipulsar: write %s: %w", tl.name, err)
		fs.log.Error("cannot write a topic's segment; its appends fail until restart", "topic", tl.name, "err", err)
	}
	return tl.failed
}

// syncTopics fsyncs every touched topic's active segment (and its directory
// when a segment was created), in parallel when there are several.
func (fs *fileStore) syncTopics(touched []*topicLog) {
	syncOne := func(tl *topicLog) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		switch {
		case tl.batchErr != nil:
			return
		case tl.deleted || tl.file == nil:
			tl.batchErr = fmt.Errorf("%w: %s", errTopicDeleted, tl.name)
			return
		}
		if err := tl.file.Sync(); err != nil {
			tl.batchErr = fs.failTopic(tl, err)
			return
		}
		fs.fsyncs.Add(1)
		if tl.newSeg {
			if err := syncDir(tl.dir); err != nil {
				tl.batchErr = fs.failTopic(tl, err)
				return
			}
			tl.newSeg = false
		}
	}
	if len(touched) == 1 {
		syncOne(touched[0])
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelFsyncs)
	for _, tl := range touched {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			syncOne(tl)
		})
	}
	wg.Wait()
}

// evict closes the least recently written segment files once more than
// cfg.maxOpen are open; each is fsynced already. Deleted topics stay in
// fs.open (with no file) until evicted, so at most cfg.maxOpen of them.
func (fs *fileStore) evict() {
	if len(fs.open) <= fs.cfg.maxOpen {
		return
	}
	tls := slices.SortedFunc(maps.Keys(fs.open), func(a, b *topicLog) int {
		return cmp.Compare(a.lastUsed, b.lastUsed)
	})
	for _, tl := range tls[:len(tls)-fs.cfg.maxOpen/2] {
		tl.mu.Lock()
		if tl.file != nil {
			if err := tl.file.Close(); err != nil {
				fs.log.Warn("close segment", "topic", tl.name, "err", err)
			}
			tl.file = nil
		}
		tl.buf = nil
		tl.mu.Unlock()
		delete(fs.open, tl)
	}
}
