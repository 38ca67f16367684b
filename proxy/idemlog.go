package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IdempotencyLog keeps LocalIdempotency's records in a directory: every change
// is appended to the current segment file, written out and fsynced every
// interval and at close (a crash loses at most the last interval's
// changes, the embedded mode's stated window), and replayed at start.
//
// Segments never need compacting. Each starts when the process starts or
// when the current one reaches segmentBytes, and is deleted once every
// record in it has expired and every older segment is gone: a key's
// latest record is always in the newest segment that mentions it, and a
// deletion is written after what it deletes, so dropping the oldest
// expired segment never brings back or loses a live record.
//
// A record is
//
//	length uvarint | body | CRC-32C (Castagnoli) of length and body, u32 big-endian
//	body: op u8 ('s' set, 'd' delete) | key length uvarint | key | expireAt varint (Unix ms; 0 for 'd') | value length uvarint | value
//
// Replay reads each segment up to its first record that is torn or does
// not check out (a crash tears the last one), logs what it skipped, and
// goes on with the next segment.
type IdempotencyLog struct {
	dir          string
	interval     time.Duration
	segmentBytes int64 // a segment past this size is retired
	log          *slog.Logger
	// loaded: the live records replay found, for NewLocalIdempotency.
	loaded map[string]localRecord

	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	seq     uint64 // the current segment's number
	size    int64  // its bytes
	maxExp  int64  // its latest expiry
	segs    []idemSeg
	retired []*os.File // rolled segments still to fsync and close
	newFile bool       // a segment was created since the last directory fsync
	buf     []byte
	failed  bool // the last write or fsync failed (logged once)

	quit, done chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// idemSeg is a segment before the current one.
type idemSeg struct {
	seq    uint64
	maxExp int64
}

const (
	idemSegmentBytes = 64 << 20
	idemMaxRecord    = 1 << 20 // far above any key and record the produce path accepts
	idemSegPrefix    = "idem-"
	idemSegSuffix    = ".log"
)

var idemCRC = crc32.MakeTable(crc32.Castagnoli)

// OpenIdempotencyLog replays the segments in dir (created if missing) and starts
// a new segment and the flusher. Pass it to NewLocalIdempotency, and close
// the store when done.
func OpenIdempotencyLog(dir string, interval time.Duration, log *slog.Logger) (*IdempotencyLog, error) {
	return openIdempotencyLog(dir, interval, log, idemSegmentBytes)
}

// openIdempotencyLog is OpenIdempotencyLog with segments of segmentBytes.
func openIdempotencyLog(dir string, interval time.Duration, log *slog.Logger, segmentBytes int64) (*IdempotencyLog, error) {
	if interval <= 0 {
		interval = time.Second
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("proxy: idempotency log dir: %w", err)
	}
	l := &IdempotencyLog{dir: dir, interval: interval, segmentBytes: segmentBytes, log: log.With("component", "idempotency-log", "dir", dir),
		loaded: map[string]localRecord{}, quit: make(chan struct{}), done: make(chan struct{})}
	seqs, err := idemSegments(dir)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	for _, seq := range seqs {
		maxExp, err := l.replay(seq, now)
		if err != nil {
			return nil, err
		}
		l.segs = append(l.segs, idemSeg{seq: seq, maxExp: maxExp})
		l.seq = seq
	}
	l.dropExpired(now)
	if err := l.startSegment(l.seq + 1); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	l.log.Info("idempotency records loaded", "keys", len(l.loaded), "segments", len(l.segs))
	go l.run()
	return l, nil
}

// idemSegments lists the segment numbers in dir, in order.
func idemSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("proxy: idempotency log dir: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, idemSegPrefix) || !strings.HasSuffix(name, idemSegSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, idemSegPrefix), idemSegSuffix), 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

func (l *IdempotencyLog) segPath(seq uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%s%016x%s", idemSegPrefix, seq, idemSegSuffix))
}

// replay applies segment seq's records to l.loaded and returns its latest
// expiry.
func (l *IdempotencyLog) replay(seq uint64, now int64) (int64, error) {
	f, err := os.Open(l.segPath(seq))
	if err != nil {
		return 0, fmt.Errorf("proxy: idempotency log: %w", err)
	}
	defer func() { _ = f.Close() }()
	r := bufio.NewReaderSize(f, 64<<10)
	var maxExp int64
	n := 0
	for {
		op, key, exp, val, err := readIdemRecord(r)
		if errors.Is(err, io.EOF) {
			return maxExp, nil
		}
		if err != nil {
			l.log.Warn("idempotency log segment ends in a record that does not check out (a crash tears the last one): the rest of it is skipped",
				"segment", filepath.Base(f.Name()), "recordsRead", n, "err", err)
			return maxExp, nil
		}
		n++
		switch op {
		case 's':
			maxExp = max(maxExp, exp)
			if exp > now {
				l.loaded[key] = localRecord{v: val, expireAt: exp}
			} else {
				delete(l.loaded, key)
			}
		case 'd':
			delete(l.loaded, key)
		}
	}
}

// errIdemRecord wraps every reason a record does not decode.
var errIdemRecord = errors.New("bad record")

// readIdemRecord reads one record: io.EOF at a clean end, an error
// wrapping errIdemRecord (or io.ErrUnexpectedEOF) when torn or damaged.
func readIdemRecord(r *bufio.Reader) (op byte, key string, expireAt int64, val string, err error) {
	var head [binary.MaxVarintLen64]byte
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, "", 0, "", io.EOF
		}
		return 0, "", 0, "", fmt.Errorf("%w: length: %w", errIdemRecord, err)
	}
	if n == 0 || n > idemMaxRecord {
		return 0, "", 0, "", fmt.Errorf("%w: length %d", errIdemRecord, n)
	}
	body := make([]byte, n+4)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, "", 0, "", fmt.Errorf("%w: %w", errIdemRecord, io.ErrUnexpectedEOF)
	}
	crc := crc32.Update(crc32.Checksum(binary.AppendUvarint(head[:0], n), idemCRC), idemCRC, body[:n])
	if binary.BigEndian.Uint32(body[n:]) != crc {
		return 0, "", 0, "", fmt.Errorf("%w: checksum", errIdemRecord)
	}
	return decodeIdemBody(body[:n])
}

// decodeIdemBody reads a record's body, whose checksum was checked.
func decodeIdemBody(b []byte) (op byte, key string, expireAt int64, val string, err error) {
	bad := func(what string) error { return fmt.Errorf("%w: %s", errIdemRecord, what) }
	str := func(what string) (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", bad(what)
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, nil
	}
	if len(b) == 0 || (b[0] != 's' && b[0] != 'd') {
		return 0, "", 0, "", bad("op")
	}
	op, b = b[0], b[1:]
	if key, err = str("key"); err != nil {
		return 0, "", 0, "", err
	}
	exp, k := binary.Varint(b)
	if k <= 0 {
		return 0, "", 0, "", bad("expiry")
	}
	b = b[k:]
	if val, err = str("value"); err != nil {
		return 0, "", 0, "", err
	}
	if len(b) != 0 {
		return 0, "", 0, "", bad("trailing bytes")
	}
	return op, key, exp, val, nil
}

// appendIdemRecord appends one encoded record to b.
func appendIdemRecord(b []byte, op byte, key string, expireAt int64, val string) []byte {
	bodyLen := 1 + uvarintLen(uint64(len(key))) + len(key) + varintLen(expireAt) + uvarintLen(uint64(len(val))) + len(val)
	start := len(b)
	b = binary.AppendUvarint(b, uint64(bodyLen))
	b = append(b, op)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendVarint(b, expireAt)
	b = binary.AppendUvarint(b, uint64(len(val)))
	b = append(b, val...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], idemCRC))
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return len(binary.AppendUvarint(b[:0], v))
}

func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return len(binary.AppendVarint(b[:0], v))
}

// startSegment makes seq the current segment; the caller holds mu (or is
// the opener).
func (l *IdempotencyLog) startSegment(seq uint64) error {
	f, err := os.OpenFile(l.segPath(seq), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("proxy: idempotency log: %w", err)
	}
	l.f, l.seq, l.size, l.maxExp, l.newFile = f, seq, 0, 0, true
	if l.w == nil {
		l.w = bufio.NewWriterSize(f, 256<<10)
	} else {
		l.w.Reset(f)
	}
	return nil
}

func (l *IdempotencyLog) set(key, val string, expireAt int64) { l.append('s', key, expireAt, val) }
func (l *IdempotencyLog) del(key string)                      { l.append('d', key, 0, "") }

func (l *IdempotencyLog) append(op byte, key string, expireAt int64, val string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || l.failed {
		return // closed; or failed, and the next flush tries a new segment
	}
	l.buf = appendIdemRecord(l.buf[:0], op, key, expireAt, val)
	_, err := l.w.Write(l.buf)
	l.size += int64(len(l.buf))
	l.maxExp = max(l.maxExp, expireAt)
	if err == nil && l.size >= l.segmentBytes {
		if err = l.w.Flush(); err == nil {
			err = l.switchLocked()
		}
	}
	l.noteLocked(err)
}

// switchLocked starts the next segment and retires the current one (the
// flusher fsyncs and closes it); if the next cannot be created, the
// current one stays.
func (l *IdempotencyLog) switchLocked() error {
	old, oldSeq, oldMax := l.f, l.seq, l.maxExp
	if err := l.startSegment(l.seq + 1); err != nil {
		return err
	}
	l.retired = append(l.retired, old)
	l.segs = append(l.segs, idemSeg{seq: oldSeq, maxExp: oldMax})
	return nil
}

// noteLocked records a write or fsync failure, logging the first of a run
// and the recovery. While failed, appends are dropped: the segment may end
// in a torn record (a full disk) and bufio keeps its error, so the flusher
// moves to a new segment (recoverLocked) before anything is written again.
func (l *IdempotencyLog) noteLocked(err error) {
	switch {
	case err != nil && !l.failed:
		l.log.Error("idempotency log write failed: idempotency records are kept in memory only until it works again, so a crash loses them (a retry is then produced again, with the same uid)", "err", err)
	case err == nil && l.failed:
		l.log.Info("idempotency log written again")
	}
	l.failed = err != nil
}

// recoverLocked moves a failed log to a new segment; what the failed one
// held up to its last good record stays readable.
func (l *IdempotencyLog) recoverLocked() {
	if !l.failed {
		return
	}
	old, oldSeq, oldMax := l.f, l.seq, l.maxExp
	if err := l.startSegment(l.seq + 1); err != nil {
		return // still failed: the next flush tries again
	}
	// Not fsynced again: its writes or its fsync failed. What it holds up
	// to its last good record is read at the next start.
	_ = old.Close()
	l.segs = append(l.segs, idemSeg{seq: oldSeq, maxExp: oldMax})
	l.failed = false
	l.log.Info("idempotency log written again, in a new segment: the records of the failure's time are in memory only")
}

// run writes out and fsyncs every interval, and drops expired segments.
func (l *IdempotencyLog) run() {
	defer close(l.done)
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
			l.flush()
		}
	}
}

// flush writes out the buffer, fsyncs the segments written to (outside
// the lock: appends go on meanwhile) and deletes expired ones.
func (l *IdempotencyLog) flush() {
	l.mu.Lock()
	if l.f == nil {
		l.mu.Unlock()
		return
	}
	l.recoverLocked()
	var err error
	if !l.failed {
		err = l.w.Flush()
	}
	cur, retired, newFile := l.f, l.retired, l.newFile
	l.retired, l.newFile = nil, false
	l.mu.Unlock()
	for _, f := range retired {
		err = errors.Join(err, f.Sync(), f.Close())
	}
	err = errors.Join(err, cur.Sync())
	if newFile {
		err = errors.Join(err, syncDir(l.dir))
	}
	l.mu.Lock()
	if err != nil || !l.failed {
		l.noteLocked(err)
	}
	l.dropExpired(time.Now().UnixMilli())
	l.mu.Unlock()
}

// dropExpired deletes the oldest segments whose records have all expired;
// the caller holds mu (or is the opener).
func (l *IdempotencyLog) dropExpired(now int64) {
	for len(l.segs) > 0 && l.segs[0].maxExp < now {
		if err := os.Remove(l.segPath(l.segs[0].seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("idempotency log: an expired segment could not be removed", "err", err)
			return
		}
		l.segs = l.segs[1:]
	}
}

// close stops the flusher and writes out and fsyncs what is left.
func (l *IdempotencyLog) close() error {
	l.closeOnce.Do(func() {
		close(l.quit)
		<-l.done
		l.flush()
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.failed {
			l.closeErr = errors.New("proxy: idempotency log: the last write or fsync failed (see the log)")
		}
		l.closeErr = errors.Join(l.closeErr, l.f.Close())
		l.f = nil
	})
	return l.closeErr
}

// syncDir fsyncs a directory, so that files created or removed in it stay so.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
