package minipulsar

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the persistent store.
var (
	// ErrDataDirLocked is returned by Start when another broker, in this
	// process or another, has the data directory open.
	ErrDataDirLocked = errors.New("minipulsar: data directory in use by another broker")
	// ErrCorruptDataDir is returned by Start when the data directory's
	// metadata cannot be read; damaged messages never cause it (they are
	// set aside, see docs/adr/001-minipulsar-storage.md).
	ErrCorruptDataDir = errors.New("minipulsar: corrupt data directory")

	errStoreClosed  = errors.New("minipulsar: store closed")
	errTopicDeleted = errors.New("minipulsar: topic deleted")
)

// fileStore is the store used when Options.DataDir is set: one append-only
// segment log per persistent topic, written by one goroutine that commits
// groups of appends with one fsync per touched file; cursors kept in memory
// and flushed lazily; topic metadata in one JSON file replaced atomically.
// docs/adr/001-minipulsar-storage.md says why.
//
// The data directory:
//
//	LOCK                 flock held while the store is open
//	meta.json            topic name -> ledger, partitioned topics, next ledger
//	topics/<ledger>/     one directory per persistent topic or partition
//	    <first id>.seg   segments, named by their first entry id (store_file_log.go)
//	    cursors.json     the durable subscriptions' cursors
//	    *.corrupt        damaged bytes set aside at open
//
// Non-persistent topics are not written: their appends complete at once, as
// with memStore, and they do not survive a restart (as in Pulsar).
//
// Lifecycle: openFileStore starts three goroutines (writer, completer, cursor
// flusher). sync flushes everything, stops them, closes every file and
// releases the lock; the store then fails appends and keeps cursor changes in
// memory until reopen (Server.Start after Close) starts it again.
type fileStore struct {
	dir string
	log *slog.Logger
	cfg fileStoreConfig

	metaMu sync.Mutex // serialises metadata changes and meta.json writes
	meta   metaFile

	flushMu sync.Mutex // one cursor flush at a time, so a newer state is never overwritten by an older

	mu     sync.Mutex
	closed bool
	lock   *os.File
	topics map[string]*topicLog
	queue  []*appendReq           // appends ready to be written, in order per topic
	dirty  map[*topicLog]struct{} // topics whose cursors changed since the last flush
	quit   chan struct{}          // closed by sync
	wake   chan struct{}          // an append is queued
	kick   chan struct{}          // flush cursors now
	wg     sync.WaitGroup

	// writer goroutine only
	batchNo uint64
	open    map[*topicLog]struct{}
	touched []*topicLog

	fsyncs  atomic.Uint64 // segment fsyncs, for tests and benchmarks
	batches atomic.Uint64 // group commits
}

var _ store = (*fileStore)(nil)

// fileStoreConfig holds the store's tunables; tests lower them.
type fileStoreConfig struct {
	segmentSize int64         // a segment is closed once it would grow past this
	cursorEvery time.Duration // cursor flush interval
	maxOpen     int           // open segment files kept beyond one batch
	// metaOnly: load keeps each entry's metadata, not its bytes (the
	// broker reads them back when needed), so that loading holds one
	// segment in memory at a time. The store's own tests load bytes.
	metaOnly bool
}

var defaultFileStoreConfig = fileStoreConfig{
	segmentSize: 64 << 20,
	cursorEvery: 150 * time.Millisecond,
	maxOpen:     256,
}

// topicLog is the store's state for one topic.
type topicLog struct {
	name     string
	ledger   uint64
	dir      string
	volatile bool // non-persistent: nothing is written

	// guarded by fileStore.mu
	nextID  uint64                // the id the next append must carry
	held    map[uint64]*appendReq // appends that arrived before a lower id
	cursors map[string]cursorState

	// guarded by mu, taken by the writer, deletes and cursor flushes
	mu       sync.Mutex
	deleted  bool
	failed   error // sticky: after a write or fsync error nothing more is written
	file     *os.File
	hasSeg   bool
	segFirst uint64 // first entry id of the active segment
	segSize  int64  // bytes in the active segment
	dirReady bool
	newSeg   bool // a segment was created since the last fsync: fsync the directory too

	buf []byte // encode buffer, reused between groups

	// Where each entry's record starts, for reading an entry back once the
	// broker has dropped it from memory (entrycache.go). Guarded by idxMu,
	// not mu, so that a read never waits for the writer's fsync.
	idxMu sync.Mutex
	segs  []segIndex
	rfile *os.File // read handle of segment rfirst, opened on demand
	rseg  uint64

	// writer goroutine only
	batch    uint64
	reqs     []*appendReq
	batchErr error
	lastUsed uint64
}

// segIndex locates the records of one segment: offs[i] is where the record
// of entry first+i starts.
type segIndex struct {
	first uint64
	offs  []uint32
}

// appendReq is one appendEntry call.
type appendReq struct {
	tl       *topicLog
	id       uint64
	data     []byte
	producer string
	lastSeq  int64
	done     func(error)
	err      error
}

// openFileStore opens (or creates) the persistent store in dir.
func openFileStore(dir string, log *slog.Logger) (store, *snapshot, error) {
	cfg := defaultFileStoreConfig
	cfg.metaOnly = true
	fs, snap, err := openFileStoreConfig(dir, log, cfg)
	if err != nil {
		return nil, nil, err
	}
	return fs, snap, nil
}

func openFileStoreConfig(dir string, log *slog.Logger, cfg fileStoreConfig) (*fileStore, *snapshot, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(dir, "topics"), 0o755); err != nil {
		return nil, nil, fmt.Errorf("minipulsar: data dir: %w", err)
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return nil, nil, err
	}
	fs := &fileStore{
		dir:    dir,
		log:    log.With("dataDir", dir),
		cfg:    cfg,
		lock:   lock,
		topics: map[string]*topicLog{},
		dirty:  map[*topicLog]struct{}{},
		wake:   make(chan struct{}, 1),
		kick:   make(chan struct{}, 1),
		open:   map[*topicLog]struct{}{},
	}
	snap, err := fs.load()
	if err != nil {
		_ = lock.Close()
		return nil, nil, err
	}
	fs.start()
	return fs, snap, nil
}

func (fs *fileStore) topicsDir() string { return filepath.Join(fs.dir, "topics") }

func (fs *fileStore) newTopicLog(name string, ledger uint64) *topicLog {
	return &topicLog{
		name:     name,
		ledger:   ledger,
		dir:      filepath.Join(fs.topicsDir(), strconv.FormatUint(ledger, 10)),
		volatile: !strings.HasPrefix(name, "persistent://"),
		cursors:  map[string]cursorState{},
	}
}

// start launches the store's goroutines; the caller holds mu or is the only
// user.
func (fs *fileStore) start() {
	fs.quit = make(chan struct{})
	completions := make(chan []*appendReq, 4)
	fs.wg.Add(3)
	go func() {
		defer fs.wg.Done()
		fs.writeLoop(completions)
	}()
	go func() {
		defer fs.wg.Done()
		for batch := range completions {
			for _, r := range batch {
				r.done(r.err)
			}
		}
	}()
	go func() {
		defer fs.wg.Done()
		fs.flushLoop(fs.quit)
	}()
}

// reopen takes the store back after sync: Server.Start after Close.
func (fs *fileStore) reopen() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.closed {
		return nil
	}
	lock, err := lockDataDir(fs.dir)
	if err != nil {
		return err
	}
	fs.lock, fs.closed = lock, false
	fs.start()
	if len(fs.dirty) > 0 {
		fs.kickFlush()
	}
	return nil
}

// sync makes everything durable, stops the store's goroutines, closes its
// files and releases the data directory. It is idempotent.
func (fs *fileStore) sync() error {
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		return nil
	}
	fs.closed = true
	for _, tl := range fs.topics {
		// Only possible if the broker never appended a lower id: fail the
		// rest rather than wait forever.
		for _, id := range slices.Sorted(maps.Keys(tl.held)) {
			r := tl.held[id]
			r.err = fmt.Errorf("%w: entry %d of %s waited for entry %d", errStoreClosed, id, tl.name, tl.nextID)
			fs.log.Error("append never preceded by its predecessor", "topic", tl.name, "entry", id, "want", tl.nextID)
			fs.queue = append(fs.queue, r)
			tl.nextID = id + 1
		}
		tl.held = nil
	}
	close(fs.quit)
	fs.mu.Unlock()
	fs.signal()
	fs.wg.Wait()

	err := fs.flushCursors()
	for _, tl := range fs.allTopics() {
		tl.mu.Lock()
		if tl.file != nil {
			if cerr := tl.file.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("minipulsar: close segment of %s: %w", tl.name, cerr)
			}
			tl.file = nil
		}
		tl.mu.Unlock()
		tl.closeReader()
	}
	clear(fs.open)
	fs.mu.Lock()
	if cerr := fs.lock.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("minipulsar: release data dir: %w", cerr)
	}
	fs.lock = nil
	fs.mu.Unlock()
	return err
}

func (fs *fileStore) allTopics() []*topicLog {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return slices.Collect(maps.Values(fs.topics))
}

func (fs *fileStore) signal() {
	select {
	case fs.wake <- struct{}{}:
	default:
	}
}

func (fs *fileStore) kickFlush() {
	select {
	case fs.kick <- struct{}{}:
	default:
	}
}

// --- metadata ---

// changeMeta applies change to the metadata and writes meta.json; on a write
// error the change is undone. The caller holds metaMu.
func (fs *fileStore) changeMeta(change func(m *metaFile)) error {
	old := metaFile{
		Version:     fs.meta.Version,
		NextLedger:  fs.meta.NextLedger,
		Topics:      maps.Clone(fs.meta.Topics),
		Partitioned: maps.Clone(fs.meta.Partitioned),
	}
	change(&fs.meta)
	b, err := fs.meta.marshal()
	if err == nil {
		err = writeFileAtomic(fs.dir, metaName, b)
	}
	if err != nil {
		fs.meta = old
		fs.log.Error("cannot write topic metadata", "err", err)
		return err
	}
	return nil
}

func (fs *fileStore) putTopic(topic string, ledger, nextLedger uint64) error {
	fs.metaMu.Lock()
	defer fs.metaMu.Unlock()
	tl := fs.newTopicLog(topic, ledger)
	if !tl.volatile {
		if cur, ok := fs.meta.Topics[topic]; !ok || cur.Ledger != ledger || fs.meta.NextLedger < max(nextLedger, ledger+1) {
			err := fs.changeMeta(func(m *metaFile) {
				m.Topics[topic] = metaTopic{Ledger: ledger}
				m.NextLedger = max(m.NextLedger, nextLedger, ledger+1)
			})
			if err != nil {
				return err
			}
		}
	}
	fs.mu.Lock()
	old := fs.topics[topic]
	if old != nil && old.ledger == ledger {
		fs.mu.Unlock()
		return nil
	}
	fs.topics[topic] = tl
	if old != nil {
		fs.retireLocked(old)
	}
	fs.mu.Unlock()
	if old != nil {
		fs.signal()
		fs.removeTopicFiles(old)
	}
	return nil
}

func (fs *fileStore) putPartitioned(topic string, partitions int) error {
	if !strings.HasPrefix(topic, "persistent://") {
		return nil
	}
	fs.metaMu.Lock()
	defer fs.metaMu.Unlock()
	if fs.meta.Partitioned[topic] == partitions {
		return nil
	}
	return fs.changeMeta(func(m *metaFile) { m.Partitioned[topic] = partitions })
}

func (fs *fileStore) deletePartitioned(topic string) error {
	fs.metaMu.Lock()
	defer fs.metaMu.Unlock()
	if _, ok := fs.meta.Partitioned[topic]; !ok {
		return nil
	}
	return fs.changeMeta(func(m *metaFile) { delete(m.Partitioned, topic) })
}

// deleteTopic forgets a topic and removes its files. The metadata goes
// first: a crash before the files are gone leaves a directory that the next
// open removes.
func (fs *fileStore) deleteTopic(topic string) error {
	fs.metaMu.Lock()
	defer fs.metaMu.Unlock()
	if _, ok := fs.meta.Topics[topic]; ok {
		if err := fs.changeMeta(func(m *metaFile) { delete(m.Topics, topic) }); err != nil {
			return err
		}
	}
	fs.mu.Lock()
	tl := fs.topics[topic]
	if tl != nil {
		fs.retireLocked(tl)
	}
	fs.mu.Unlock()
	if tl != nil {
		fs.signal()
		fs.removeTopicFiles(tl)
	}
	return nil
}

// retireLocked drops tl from the store; appends still waiting for a lower id
// fail. The caller holds mu.
func (fs *fileStore) retireLocked(tl *topicLog) {
	if fs.topics[tl.name] == tl {
		delete(fs.topics, tl.name)
	}
	delete(fs.dirty, tl)
	for _, id := range slices.Sorted(maps.Keys(tl.held)) {
		r := tl.held[id]
		r.err = fmt.Errorf("%w: %s", errTopicDeleted, tl.name)
		// While closed nothing is held (sync failed it); were it otherwise,
		// the writer would complete it after reopen.
		fs.queue = append(fs.queue, r)
	}
	tl.held = nil
}

func (fs *fileStore) removeTopicFiles(tl *topicLog) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.deleted = true
	tl.buf = nil
	if tl.file != nil {
		_ = tl.file.Close()
		tl.file = nil
	}
	tl.idxMu.Lock()
	tl.segs = nil
	tl.idxMu.Unlock()
	tl.closeReader()
	if tl.volatile {
		return
	}
	if err := os.RemoveAll(tl.dir); err != nil {
		// The next open removes what is left: meta.json no longer names it.
		fs.log.Error("cannot remove a deleted topic's files", "topic", tl.name, "dir", tl.dir, "err", err)
		return
	}
	if err := syncDir(fs.topicsDir()); err != nil {
		fs.log.Warn("cannot fsync the topics directory", "err", err)
	}
}

// --- entries ---

// appendEntry queues an entry for the writer. Entries of a topic are written
// and completed in id order: one that arrives before a lower id (two
// producers racing between id assignment and appendEntry) waits for it.
func (fs *fileStore) appendEntry(topic string, id uint64, data []byte, producer string, lastSeq int64, done func(error)) {
	r := &appendReq{id: id, data: data, producer: producer, lastSeq: lastSeq, done: done}
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		done(fmt.Errorf("%w: append to %s", errStoreClosed, topic))
		return
	}
	tl := fs.topics[topic]
	if tl != nil && tl.volatile {
		fs.mu.Unlock()
		done(nil)
		return
	}
	r.tl = tl
	switch {
	case tl == nil:
		r.err = fmt.Errorf("%w: %s", ErrTopicNotFound, topic)
		fs.queue = append(fs.queue, r)
	case id == tl.nextID:
		fs.queue = append(fs.queue, r)
		tl.nextID++
		for len(tl.held) > 0 {
			next, ok := tl.held[tl.nextID]
			if !ok {
				break
			}
			delete(tl.held, tl.nextID)
			fs.queue = append(fs.queue, next)
			tl.nextID++
		}
	case id > tl.nextID:
		if tl.held == nil {
			tl.held = map[uint64]*appendReq{}
		}
		tl.held[id] = r
	default:
		r.err = fmt.Errorf("minipulsar: entry %d of %s appended after entry %d", id, topic, tl.nextID-1)
		fs.queue = append(fs.queue, r)
	}
	fs.mu.Unlock()
	fs.signal()
}

// --- cursors ---

func (fs *fileStore) putCursor(topic, sub string, cs cursorState) {
	fs.mu.Lock()
	tl := fs.topics[topic]
	if tl == nil || tl.volatile {
		fs.mu.Unlock()
		return
	}
	_, existed := tl.cursors[sub]
	tl.cursors[sub] = cs
	fs.dirty[tl] = struct{}{}
	fs.mu.Unlock()
	if !existed {
		fs.kickFlush() // a new subscription: write it now rather than in a while
	}
}

func (fs *fileStore) deleteCursor(topic, sub string) {
	fs.mu.Lock()
	tl := fs.topics[topic]
	if tl == nil || tl.volatile {
		fs.mu.Unlock()
		return
	}
	if _, ok := tl.cursors[sub]; !ok {
		fs.mu.Unlock()
		return
	}
	delete(tl.cursors, sub)
	fs.dirty[tl] = struct{}{}
	fs.mu.Unlock()
	fs.kickFlush()
}

func (fs *fileStore) flushLoop(quit <-chan struct{}) {
	tick := time.NewTicker(fs.cfg.cursorEvery)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return
		case <-tick.C:
		case <-fs.kick:
		}
		_ = fs.flushCursors()
	}
}

// flushCursors writes the cursors of every topic whose cursors changed.
func (fs *fileStore) flushCursors() error {
	type work struct {
		tl      *topicLog
		cursors map[string]cursorState
	}
	fs.flushMu.Lock()
	defer fs.flushMu.Unlock()
	fs.mu.Lock()
	todo := make([]work, 0, len(fs.dirty))
	for tl := range fs.dirty {
		todo = append(todo, work{tl, maps.Clone(tl.cursors)})
	}
	clear(fs.dirty)
	fs.mu.Unlock()
	var errs []error
	for _, w := range todo {
		w.tl.mu.Lock()
		var err error
		if !w.tl.deleted {
			err = fs.writeCursors(w.tl, w.cursors)
		}
		w.tl.mu.Unlock()
		if err != nil {
			fs.log.Error("cannot write cursors", "topic", w.tl.name, "err", err)
			errs = append(errs, err)
			fs.mu.Lock()
			if fs.topics[w.tl.name] == w.tl {
				fs.dirty[w.tl] = struct{}{}
			}
			fs.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// writeCursors replaces the topic's cursors.json; the caller holds tl.mu.
func (fs *fileStore) writeCursors(tl *topicLog, cursors map[string]cursorState) error {
	if err := fs.ensureDir(tl); err != nil {
		return err
	}
	b, err := marshalCursors(cursors)
	if err != nil {
		return err
	}
	return writeFileAtomic(tl.dir, cursorsName, b)
}

// ensureDir creates the topic's directory durably; the caller holds tl.mu.
func (fs *fileStore) ensureDir(tl *topicLog) error {
	if tl.dirReady {
		return nil
	}
	if err := os.MkdirAll(tl.dir, 0o755); err != nil {
		return fmt.Errorf("minipulsar: %w", err)
	}
	if err := syncDir(fs.topicsDir()); err != nil {
		return fmt.Errorf("minipulsar: fsync %s: %w", fs.topicsDir(), err)
	}
	tl.dirReady = true
	return nil
}
