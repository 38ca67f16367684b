package tracer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// outbox is the pipeline's local durable spill: a directory of append-only
// segment files named <sequence>.seg, each a run of checksummed records (see
// codec.go). Records are appended to the active segment; a full segment, or
// the active one when the replayer has nothing older, is sealed (fsynced and
// closed) and handed to the replayer, which writes its records to the sink in
// order and deletes the file once all of them are stored. A segment that
// cannot be decoded is renamed to <sequence>.seg.corrupt and kept for
// inspection. The directory is locked (flock) so two pipelines cannot share it.
//
// Segments left by an earlier process are replayed first, oldest first.
type outbox struct {
	dir          string
	segmentBytes int64
	maxBytes     int64
	sync         bool

	mu        sync.Mutex
	lock      *os.File
	active    *os.File
	activeSeq uint64
	activeLen int64
	activeMin int64 // earliest event time (µs) in the active segment; 0 when empty
	nextSeq   uint64
	sealed    []segment // ascending by seq
	total     int64     // bytes in sealed and active segments
	closed    bool
}

type segment struct {
	seq    uint64
	size   int64
	oldest int64 // earliest event time (µs) appended to it; 0 when unknown
}

const segmentExt = ".seg"

var (
	errOutboxFull   = errors.New("tracer: outbox full")
	errOutboxClosed = errors.New("tracer: outbox closed")
)

func openOutbox(dir string, segmentBytes, maxBytes int64, syncEach bool) (*outbox, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("tracer: outbox dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	o := &outbox{dir: dir, segmentBytes: segmentBytes, maxBytes: maxBytes, sync: syncEach, lock: lock, nextSeq: 1}
	entries, err := os.ReadDir(dir)
	if err != nil {
		_ = unlockDir(lock)
		return nil, fmt.Errorf("tracer: outbox dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segmentExt) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segmentExt), 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			_ = unlockDir(lock)
			return nil, fmt.Errorf("tracer: outbox segment: %w", err)
		}
		if info.Size() == 0 {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		o.sealed = append(o.sealed, segment{seq: seq, size: info.Size(), oldest: firstEventTime(filepath.Join(dir, name), info.ModTime())})
		o.total += info.Size()
		o.nextSeq = max(o.nextSeq, seq+1)
	}
	slices.SortFunc(o.sealed, func(a, b segment) int { return cmpUint(a.seq, b.seq) })
	return o, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (o *outbox) path(seq uint64) string {
	return filepath.Join(o.dir, fmt.Sprintf("%020d%s", seq, segmentExt))
}

// firstEventTime is the earliest event time (µs) in a segment's first
// record, or, when that cannot be read, the file's modification time.
func firstEventTime(path string, mtime time.Time) int64 {
	r, err := openSegment(path, 0)
	if err != nil {
		return mtime.UnixMicro()
	}
	defer func() { _ = r.close() }()
	evs, err := r.next()
	if err != nil || len(evs) == 0 {
		return mtime.UnixMicro()
	}
	oldest := evs[0].Time.UnixMicro()
	for i := range evs {
		oldest = min(oldest, evs[i].Time.UnixMicro())
	}
	return oldest
}

// append writes one framed record (see appendRecord) to the active segment.
// oldest is the earliest event time in it, in µs, for the lag gauge.
func (o *outbox) append(rec []byte, oldest int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errOutboxClosed
	}
	if o.maxBytes > 0 && o.total+int64(len(rec)) > o.maxBytes {
		return fmt.Errorf("%w: %d of %d bytes used", errOutboxFull, o.total, o.maxBytes)
	}
	if o.active == nil {
		f, err := os.OpenFile(o.path(o.nextSeq), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("tracer: outbox create segment: %w", err)
		}
		o.active, o.activeSeq, o.activeLen = f, o.nextSeq, 0
		o.nextSeq++
	}
	if _, err := o.active.Write(rec); err != nil {
		// Cut off a partial record so the segment stays readable.
		_ = o.active.Truncate(o.activeLen)
		return fmt.Errorf("tracer: outbox write: %w", err)
	}
	if o.sync {
		if err := o.active.Sync(); err != nil {
			return fmt.Errorf("tracer: outbox sync: %w", err)
		}
	}
	if o.activeLen == 0 || oldest < o.activeMin {
		o.activeMin = oldest
	}
	o.activeLen += int64(len(rec))
	o.total += int64(len(rec))
	if o.activeLen >= o.segmentBytes {
		return o.sealLocked()
	}
	return nil
}

// sealLocked syncs and closes the active segment and queues it for replay.
func (o *outbox) sealLocked() error {
	if o.active == nil {
		return nil
	}
	f, seq, size, oldest := o.active, o.activeSeq, o.activeLen, o.activeMin
	o.active, o.activeLen, o.activeMin = nil, 0, 0
	serr := f.Sync()
	cerr := f.Close()
	if size == 0 {
		_ = os.Remove(o.path(seq))
	} else {
		o.sealed = append(o.sealed, segment{seq: seq, size: size, oldest: oldest})
	}
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("tracer: outbox seal: %w", err)
	}
	return nil
}

// pending reports whether any event waits in the outbox.
func (o *outbox) pending() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.sealed) > 0 || o.activeLen > 0
}

// oldest returns the oldest sealed segment, sealing the active one first
// when nothing older is waiting.
func (o *outbox) oldest() (uint64, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.sealed) == 0 && !o.closed && o.activeLen > 0 {
		if err := o.sealLocked(); err != nil {
			return 0, false, err
		}
	}
	if len(o.sealed) == 0 {
		return 0, false, nil
	}
	return o.sealed[0].seq, true, nil
}

// done removes a fully replayed segment. With corrupt set, the file is kept
// under a .corrupt name instead.
func (o *outbox) done(seq uint64, corrupt bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := slices.IndexFunc(o.sealed, func(s segment) bool { return s.seq == seq })
	if i < 0 {
		return nil
	}
	o.total -= o.sealed[i].size
	o.sealed = slices.Delete(o.sealed, i, i+1)
	p := o.path(seq)
	if corrupt {
		return os.Rename(p, p+".corrupt")
	}
	return os.Remove(p)
}

// oldestTime is the earliest event time (µs) in the oldest waiting segment,
// or 0 when nothing waits.
func (o *outbox) oldestTime() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.sealed) > 0 {
		return o.sealed[0].oldest
	}
	if o.activeLen > 0 {
		return o.activeMin
	}
	return 0
}

// size returns the bytes and segments waiting.
func (o *outbox) size() (int64, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(o.sealed)
	if o.activeLen > 0 {
		n++
	}
	return o.total, n
}

// close seals the active segment and releases the directory lock. What is
// left is replayed by the next pipeline opened on the directory.
func (o *outbox) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	err := o.sealLocked()
	return errors.Join(err, unlockDir(o.lock))
}

// segmentReader reads a segment's records in order from a byte offset.
type segmentReader struct {
	f   *os.File
	r   *bufio.Reader
	off int64 // offset of the next record
	buf []byte
	evs []Event // the array next decodes into
}

func openSegment(path string, off int64) (*segmentReader, error) {
	f, err := os.Open(path) //nolint:gosec // path is built from the outbox directory and a sequence number
	if err != nil {
		return nil, fmt.Errorf("tracer: outbox open segment: %w", err)
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("tracer: outbox seek: %w", err)
		}
	}
	return &segmentReader{f: f, r: bufio.NewReaderSize(f, 256<<10), off: off}, nil
}

// next returns the next record's events; io.EOF at a clean end. The slice
// is reused by the following call: a caller that keeps events beyond it
// copies them (Pipeline.settle does for the events it retries).
func (s *segmentReader) next() ([]Event, error) {
	var h [recordHeaderLen]byte
	if _, err := io.ReadFull(s.r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, errShortRecord
	}
	n, _, err := parseHeader(h[:])
	if err != nil {
		return nil, err
	}
	if cap(s.buf) < recordHeaderLen+n {
		s.buf = make([]byte, recordHeaderLen+n)
	}
	b := s.buf[:recordHeaderLen+n]
	copy(b, h[:])
	if _, err := io.ReadFull(s.r, b[recordHeaderLen:]); err != nil {
		return nil, errShortRecord
	}
	evs, used, err := decodeRecordInto(s.evs, b)
	if err != nil {
		return nil, err
	}
	if cap(evs) <= maxReusedEvents {
		s.evs = evs
	}
	s.off += int64(used)
	return evs, nil
}

// maxReusedEvents bounds the array a segmentReader keeps between records
// (~1 MiB): records are BatchSize events (500), a larger one is rare.
const maxReusedEvents = 4096

func (s *segmentReader) close() error { return s.f.Close() }
