package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors. Errors returned by the package wrap one of these; match
// them with errors.Is.
var (
	// ErrFull: the spool holds Options.MaxBytes already; nothing was written.
	ErrFull = errors.New("spool: full")
	// ErrWrite: writing or fsyncing failed (for example ENOSPC, which stays
	// matchable with errors.Is(err, syscall.ENOSPC)). The record is not
	// spooled; records acknowledged before are intact and later appends may
	// succeed once the cause is gone.
	ErrWrite = errors.New("spool: write failed")
	// ErrClosed: the spool is closed.
	ErrClosed = errors.New("spool: closed")
	// ErrCorrupt: stored bytes fail their checksum or do not decode.
	ErrCorrupt = errors.New("spool: corrupt data")
	// ErrUnsupported: the data was written by a newer format version. Open
	// refuses to touch it rather than set it aside.
	ErrUnsupported = errors.New("spool: unsupported format version")
	// ErrInvalid: the record cannot be encoded (a time outside years 0..9999).
	ErrInvalid = errors.New("spool: invalid record")
	// ErrTooLarge: the encoded record exceeds Options.MaxRecordBytes.
	ErrTooLarge = errors.New("spool: record too large")
	// ErrUnknownPos: Ack was given a position the spool never returned.
	ErrUnknownPos = errors.New("spool: unknown position")
	// ErrLocked: another Spool has the directory open.
	ErrLocked = errors.New("spool: directory in use")
)

// Pos is where a record lives: its segment and the offset of its frame.
// Positions grow in append order.
type Pos struct {
	Segment uint64
	Offset  int64
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Options configures a Spool. Zero values take the defaults named per field.
type Options struct {
	// SegmentBytes is the size at which a segment file is closed and a new
	// one started (default 64 MiB). A record larger than that gets a segment
	// of its own.
	SegmentBytes int64
	// MaxBytes caps the bytes of all segment files together (default 1 GiB).
	// An append that would pass it fails with ErrFull.
	MaxBytes int64
	// MaxRecordBytes caps one encoded record (default 4 MiB).
	MaxRecordBytes int
	// MaxBatchRecords caps how many appends share one write and fsync
	// (default 1024). 1 turns group commit off: one fsync per record.
	MaxBatchRecords int
	// MaxBatchBytes caps the bytes of one group commit (default 8 MiB).
	MaxBatchBytes int
	// CheckpointInterval is how often acknowledgements are persisted when
	// some changed (default 1s; negative: only on Checkpoint and Close).
	CheckpointInterval time.Duration
	// Now stamps Record.SpooledAt (default time.Now).
	Now func() time.Time
	// Logger receives recovery reports and write failures (default slog.Default()).
	Logger *slog.Logger

	// Fault injection for tests; nil means the real file operation.
	writeAt func(f *os.File, p []byte, off int64) (int, error)
	sync    func(f *os.File) error
}

func (o Options) withDefaults() Options {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = 4 << 20
	}
	if o.MaxBatchRecords <= 0 {
		o.MaxBatchRecords = 1024
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 8 << 20
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.writeAt == nil {
		o.writeAt = (*os.File).WriteAt
	}
	if o.sync == nil {
		o.sync = (*os.File).Sync
	}
	return o
}

// Stats is a snapshot of a Spool's counters (since Open) and gauges.
type Stats struct {
	Records     uint64 // records appended
	Bytes       uint64 // bytes appended, frame headers included
	Fsyncs      uint64 // fsyncs of segment files (appends and new segments)
	Acked       uint64 // acknowledgements that marked a record
	Full        uint64 // appends refused with ErrFull
	WriteErrors uint64 // failed writes or fsyncs

	Segments  int       // live segment files
	DiskBytes int64     // bytes in live segment files
	Depth     int       // records not yet acknowledged
	Oldest    time.Time // SpooledAt of the oldest unacknowledged record; zero if none

	CorruptTails int   // tails Open set aside
	CorruptBytes int64 // their bytes
	CorruptFiles int   // ".corrupt" files in the directory at Open, old ones included
}

// Spool is a durable local queue of Records: a write-ahead log in segment
// files with group commit, acknowledgement tracking and crash recovery.
// All methods are safe for concurrent use.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File

	reqs       chan *appendReq
	closing    chan struct{} // closed by Close: stop accepting
	writerDone chan struct{} // closed when the writer has answered every taken request
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error

	// Owned by the writer goroutine.
	active     *segment
	activeFile *os.File
	wEnd       int64 // durable end of the active segment
	buf        []byte
	group      []*appendReq

	ckMu sync.Mutex // serialises checkpoint writes

	mu        sync.Mutex
	segs      []*segment // live segments by ascending id; the active one last
	nextID    uint64
	diskBytes int64
	depth     int
	ackDirty  bool
	notify    chan struct{} // closed and replaced when records become readable
	closed    bool
	recovery  Recovery

	records, bytes, fsyncs, acked, full, writeErrs atomic.Uint64
}

type segment struct {
	id      uint64
	path    string
	entries []entry
	size    int64 // durable bytes
	acked   int   // acknowledged entries
	low     int   // every entry before low is acknowledged
	sealed  bool  // no more appends; may be deleted once fully acknowledged
}

func (g *segment) fullyAcked() bool { return g.acked == len(g.entries) }

type appendReq struct {
	ctx     context.Context
	payload []byte
	at      int64
	off     int64
	done    chan appendResult
}

type appendResult struct {
	pos Pos
	err error
}

func (r *appendReq) reply(pos Pos, err error) { r.done <- appendResult{pos, err} }

// Open opens or creates the spool in dir, recovering what is there: every
// segment is verified, a torn or corrupted tail is moved to a ".corrupt" file
// beside it (reported by Recovery, Stats and the logger), and acknowledgements
// are loaded from the checkpoint. Only one Spool may have dir open.
func Open(dir string, opts Options) (*Spool, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		dir:        dir,
		opts:       opts,
		log:        opts.Logger.With("component", "spool", "dir", dir),
		lock:       lock,
		reqs:       make(chan *appendReq, max(opts.MaxBatchRecords, 1024)),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		notify:     make(chan struct{}),
	}
	if err := s.recover(); err != nil {
		_ = lock.Close()
		return nil, err
	}
	s.wg.Go(func() {
		defer close(s.writerDone)
		s.writeLoop()
	})
	if opts.CheckpointInterval > 0 {
		s.wg.Go(s.checkpointLoop)
	}
	return s, nil
}

// Recovery returns what Open found.
func (s *Spool) Recovery() Recovery {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recovery
	r.Corrupt = append([]CorruptTail(nil), r.Corrupt...)
	return r
}

// Append writes rec and returns once it is fsynced, together with concurrent
// appends (group commit). A zero SpooledAt is set to Options.Now().
//
// On ErrFull, ErrWrite, ErrTooLarge, ErrInvalid and ErrClosed the record was
// not spooled. If ctx ends while the write is under way, Append returns an
// error wrapping ctx.Err() and the record may or may not be spooled; the
// caller must treat it as not acknowledged (a replay then delivers it at
// most once more, deduplicated by UID).
func (s *Spool) Append(ctx context.Context, rec Record) (Pos, error) {
	if rec.SpooledAt.IsZero() {
		rec.SpooledAt = s.opts.Now()
	}
	payload, err := rec.MarshalBinary()
	if err != nil {
		return Pos{}, err
	}
	if len(payload) > s.opts.MaxRecordBytes {
		return Pos{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), s.opts.MaxRecordBytes)
	}
	if err := ctx.Err(); err != nil {
		return Pos{}, err
	}
	req := &appendReq{ctx: ctx, payload: payload, at: unixNano(rec.SpooledAt), done: make(chan appendResult, 1)}
	select {
	case s.reqs <- req:
	case <-s.closing:
		return Pos{}, ErrClosed
	case <-ctx.Done():
		return Pos{}, ctx.Err()
	}
	select {
	case res := <-req.done:
		return res.pos, res.err
	case <-ctx.Done():
		return Pos{}, fmt.Errorf("spool: append outcome unknown: %w", ctx.Err())
	case <-s.writerDone:
		select {
		case res := <-req.done:
			return res.pos, res.err
		default:
			return Pos{}, ErrClosed // queued after the writer's last drain: never written
		}
	}
}

// writeLoop is the single writer. It takes one request, then everything that
// queued up meanwhile (while the previous fsync ran), and commits them with
// one write and one fsync.
func (s *Spool) writeLoop() {
	batch := make([]*appendReq, 0, s.opts.MaxBatchRecords)
	for {
		select {
		case r := <-s.reqs:
			batch = append(batch[:0], r)
		case <-s.closing:
			s.drain(batch[:0])
			return
		}
		size := len(batch[0].payload)
	collect:
		for len(batch) < s.opts.MaxBatchRecords && size < s.opts.MaxBatchBytes {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				size += len(r.payload)
			default:
				break collect
			}
		}
		s.commit(batch)
		clear(batch)
	}
}

// drain commits what was queued when Close began, then closes the active
// segment.
func (s *Spool) drain(batch []*appendReq) {
	for {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
			if len(batch) < s.opts.MaxBatchRecords {
				continue
			}
		default:
		}
		if len(batch) == 0 {
			break
		}
		s.commit(batch)
		clear(batch)
		batch = batch[:0]
	}
	if s.active != nil {
		s.sealActive()
	}
}

// commit writes a batch, rolling to new segments where needed. Every request
// in it gets exactly one reply.
func (s *Spool) commit(batch []*appendReq) {
	s.mu.Lock()
	disk := s.diskBytes // only shrinks meanwhile, so the check below is conservative
	s.mu.Unlock()
	var used int64
	group, buf := s.group[:0], s.buf[:0]
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply(Pos{}, err)
			continue
		}
		roll, need := s.plan(len(r.payload), len(buf))
		if disk+used+need > s.opts.MaxBytes && len(group) == 0 && s.activeDone() {
			// Everything in the active segment is acknowledged: seal it so
			// its space comes back. Nothing is pending, so diskBytes now
			// accounts for every byte this batch wrote.
			s.sealActive()
			s.mu.Lock()
			disk, used = s.diskBytes, 0
			s.mu.Unlock()
			roll, need = s.plan(len(r.payload), 0)
		}
		if disk+used+need > s.opts.MaxBytes {
			s.full.Add(1)
			r.reply(Pos{}, fmt.Errorf("%w: %d of %d bytes used", ErrFull, disk+used, s.opts.MaxBytes))
			continue
		}
		if roll {
			if len(group) > 0 {
				s.flush(group, buf)
				group, buf = group[:0], buf[:0]
			}
			if err := s.roll(); err != nil {
				s.writeErrs.Add(1)
				err = fmt.Errorf("%w: new segment: %w", ErrWrite, err)
				s.log.Error("spool: cannot start a segment", "error", err)
				for _, r := range batch[i:] {
					r.reply(Pos{}, err)
				}
				s.keep(group, buf)
				return
			}
		}
		r.off = s.wEnd + int64(len(buf))
		buf = appendFrame(buf, r.payload)
		group = append(group, r)
		used += need
	}
	if len(group) > 0 {
		s.flush(group, buf)
	}
	s.keep(group, buf)
}

// plan says whether a payload of n bytes, written after pending bytes,
// needs a new segment, and how many bytes it adds to the spool.
func (s *Spool) plan(n, pending int) (roll bool, need int64) {
	frame := int64(frameHeaderSize + n)
	end := s.wEnd + int64(pending)
	roll = s.active == nil || (end > headerSize && end+frame > s.opts.SegmentBytes)
	if roll {
		return true, frame + headerSize
	}
	return false, frame
}

// activeDone reports whether the active segment holds records and all of
// them are acknowledged.
func (s *Spool) activeDone() bool {
	if s.active == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active.entries) > 0 && s.active.fullyAcked()
}

// keep retains the batch buffers for reuse unless they grew large.
func (s *Spool) keep(group []*appendReq, buf []byte) {
	clear(group)
	s.group = group[:0]
	if cap(buf) <= 1<<20 {
		s.buf = buf[:0]
	} else {
		s.buf = nil
	}
}

// flush writes buf at the end of the active segment and fsyncs it. On
// failure it truncates the segment back to its last durable record.
func (s *Spool) flush(group []*appendReq, buf []byte) {
	seg, f := s.active, s.activeFile
	_, err := s.opts.writeAt(f, buf, s.wEnd)
	syncFailed := false
	if err == nil {
		err = s.opts.sync(f)
		s.fsyncs.Add(1)
		syncFailed = err != nil
	}
	if err != nil {
		s.writeErrs.Add(1)
		err = fmt.Errorf("%w: segment %d: %w", ErrWrite, seg.id, err)
		s.log.Warn("spool: append failed", "records", len(group), "error", err)
		s.undo(syncFailed)
		for _, r := range group {
			r.reply(Pos{}, err)
		}
		return
	}
	s.mu.Lock()
	for _, r := range group {
		seg.entries = append(seg.entries, entry{off: r.off, at: r.at, n: uint32(len(r.payload))})
	}
	seg.size = s.wEnd + int64(len(buf))
	s.diskBytes += int64(len(buf))
	s.depth += len(group)
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	s.wEnd += int64(len(buf))
	s.records.Add(uint64(len(group)))
	s.bytes.Add(uint64(len(buf)))
	for _, r := range group {
		r.reply(Pos{seg.id, r.off}, nil)
	}
}

// undo cuts the active segment back to its durable end after a failed write.
// After a failed fsync the kernel may have dropped the dirty pages, so the
// file is not trusted further: it is sealed and the next append starts a new
// segment. The same happens when the truncation itself fails; Open later sets
// the leftover bytes aside as a corrupt tail.
func (s *Spool) undo(syncFailed bool) {
	err := s.activeFile.Truncate(s.wEnd)
	if err == nil && !syncFailed {
		err = s.opts.sync(s.activeFile)
		s.fsyncs.Add(1)
	}
	if err != nil || syncFailed {
		s.log.Warn("spool: sealing segment after a failed write",
			"segment", s.active.id, "durable_bytes", s.wEnd, "truncate_error", err)
		s.sealActive()
	}
}

// sealActive closes the active segment for appends, deleting it if every
// record in it (possibly none) is acknowledged.
func (s *Spool) sealActive() {
	seg := s.active
	if err := s.activeFile.Close(); err != nil {
		s.log.Warn("spool: closing segment", "segment", seg.id, "error", err)
	}
	s.active, s.activeFile, s.wEnd = nil, nil, 0
	s.mu.Lock()
	seg.sealed = true
	var gone []*segment
	if seg.fullyAcked() {
		gone = s.unlinkLocked(seg)
	}
	s.mu.Unlock()
	s.removeFiles(gone)
}

// roll seals the active segment, if any, and starts a new one whose header
// is durable, directory entry included.
func (s *Spool) roll() error {
	if s.active != nil {
		s.sealActive()
	}
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.mu.Unlock()
	path := filepath.Join(s.dir, segmentName(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = s.opts.writeAt(f, appendHeader(nil, id), 0)
	if err == nil {
		err = s.opts.sync(f)
		s.fsyncs.Add(1)
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	seg := &segment{id: id, path: path, size: headerSize}
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	s.diskBytes += headerSize
	s.mu.Unlock()
	s.active, s.activeFile, s.wEnd = seg, f, headerSize
	return nil
}

// unlinkLocked drops seg from the live list; the caller removes the file
// after unlocking. s.mu must be held.
func (s *Spool) unlinkLocked(seg *segment) []*segment {
	for i, g := range s.segs {
		if g == seg {
			s.segs = append(s.segs[:i], s.segs[i+1:]...)
			s.diskBytes -= seg.size
			return []*segment{seg}
		}
	}
	return nil
}

// removeFiles deletes fully acknowledged segment files. A file that cannot
// be removed is only logged: Open would find it again and replay its records
// once more, which the sidecar's dedup by UID absorbs.
func (s *Spool) removeFiles(segs []*segment) {
	if len(segs) == 0 {
		return
	}
	for _, g := range segs {
		if err := os.Remove(g.path); err != nil {
			s.log.Error("spool: removing acknowledged segment", "segment", g.id, "error", err)
		}
	}
	if err := syncDir(s.dir); err != nil {
		s.log.Warn("spool: fsync directory", "error", err)
	}
}

func (s *Spool) checkpointLoop() {
	t := time.NewTicker(s.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			if err := s.Checkpoint(); err != nil {
				s.log.Warn("spool: checkpoint", "error", err)
			}
		}
	}
}

// Checkpoint persists acknowledgements made so far. A goroutine started by
// Open calls it every Options.CheckpointInterval, and Close calls it last.
// After a crash, records acknowledged since the last checkpoint are replayed
// again.
func (s *Spool) Checkpoint() error {
	s.ckMu.Lock()
	defer s.ckMu.Unlock()
	s.mu.Lock()
	if !s.ackDirty {
		s.mu.Unlock()
		return nil
	}
	c := checkpoint{next: s.nextID, acks: map[uint64][]span{}}
	for _, g := range s.segs {
		if g.acked > 0 {
			c.acks[g.id] = ackedSpans(g.entries, g.low)
		}
	}
	s.ackDirty = false
	s.mu.Unlock()
	if err := writeCheckpoint(s.dir, &c); err != nil {
		s.mu.Lock()
		s.ackDirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}

// Stats returns a snapshot of the counters and gauges.
func (s *Spool) Stats() Stats {
	st := Stats{
		Records:     s.records.Load(),
		Bytes:       s.bytes.Load(),
		Fsyncs:      s.fsyncs.Load(),
		Acked:       s.acked.Load(),
		Full:        s.full.Load(),
		WriteErrors: s.writeErrs.Load(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Segments = len(s.segs)
	st.DiskBytes = s.diskBytes
	st.Depth = s.depth
	for _, g := range s.segs {
		if g.low < len(g.entries) {
			if at := g.entries[g.low].at; at != 0 {
				st.Oldest = time.Unix(0, at).UTC()
			}
			break
		}
	}
	st.CorruptTails = len(s.recovery.Corrupt)
	for _, c := range s.recovery.Corrupt {
		st.CorruptBytes += c.Bytes
	}
	st.CorruptFiles = s.recovery.CorruptFiles
	return st
}

// Close stops accepting appends, commits those already queued, persists
// acknowledgements and releases the directory. It is idempotent and returns
// the same error every time. Blocked Reader.Next calls return ErrClosed.
func (s *Spool) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.wg.Wait()
		s.mu.Lock()
		s.closed = true // Ack now fails, so the last checkpoint below misses none
		s.mu.Unlock()
		err := s.Checkpoint()
		if cerr := s.lock.Close(); err == nil {
			err = cerr
		}
		s.closeErr = err
	})
	return s.closeErr
}

// unixNano converts t for in-memory bookkeeping, clamping to the int64 range.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	const limit = math.MaxInt64/int64(time.Second) - 1
	switch sec := t.Unix(); {
	case sec > limit:
		return limit * int64(time.Second)
	case sec < -limit:
		return -limit * int64(time.Second)
	}
	return t.UnixNano()
}
