package minipulsar

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// logBuffer collects a store's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var smallSegments = fileStoreConfig{segmentSize: 512, cursorEvery: time.Hour, maxOpen: 4}

func openTestStore(t *testing.T, dir string, cfg fileStoreConfig) (*fileStore, *snapshot, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	fs, snap, err := openFileStoreConfig(dir, logs.logger(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fs.sync() })
	return fs, snap, logs
}

// appendWait appends and waits for durability.
func appendWait(fs *fileStore, topic string, id uint64, data []byte, producer string, seq int64) error {
	done := make(chan error, 1)
	fs.appendEntry(topic, id, data, producer, seq, func(err error) { done <- err })
	return <-done
}

func entryData(topic string, id uint64) []byte {
	// Sizes vary from empty to a few hundred bytes.
	return bytes.Repeat([]byte(fmt.Sprintf("%s#%d;", topic, id)), int(id%17))
}

func findTopic(t *testing.T, snap *snapshot, name string) storedTopic {
	t.Helper()
	for _, st := range snap.topics {
		if st.name == name {
			return st
		}
	}
	t.Fatalf("topic %s not in snapshot", name)
	return storedTopic{}
}

func segFiles(t *testing.T, dir string, suffix string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, suffix) {
			out = append(out, path)
		}
		return err
	}))
	slices.Sort(out)
	return out
}

const (
	topicA = "persistent://public/default/a"
	topicB = "persistent://public/default/b"
)

func TestFileStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	fs, snap, _ := openTestStore(t, dir, smallSegments)
	require.Equal(t, uint64(1), snap.nextLedger)
	require.Empty(t, snap.topics)

	require.NoError(t, fs.putTopic(topicA, 1, 2))
	require.NoError(t, fs.putTopic(topicB, 2, 3))
	require.NoError(t, fs.putPartitioned("persistent://public/default/p", 2))
	require.NoError(t, fs.putTopic("persistent://public/default/p-partition-0", 3, 4))
	require.NoError(t, fs.putTopic("persistent://public/default/p-partition-1", 4, 5))
	require.NoError(t, fs.putPartitioned("persistent://public/default/gone", 1))
	require.NoError(t, fs.deletePartitioned("persistent://public/default/gone"))
	const n = 60
	for i := uint64(0); i < n; i++ {
		require.NoError(t, appendWait(fs, topicA, i, entryData(topicA, i), "prod-"+fmt.Sprint(i%3), int64(i*10)))
		if i < 5 {
			require.NoError(t, appendWait(fs, topicB, i, entryData(topicB, i), "", -1))
		}
	}
	cs := cursorState{Type: 1, AckedUpTo: 7, Acked: []uint64{9, 12}, Partial: map[uint64][]int64{10: {5}}}
	fs.putCursor(topicA, "sub", cs)
	fs.putCursor(topicA, "gone", cursorState{})
	fs.deleteCursor(topicA, "gone")
	fs.putCursor(topicB, "other", cursorState{AckedUpTo: 5})
	require.NoError(t, fs.sync())
	require.Greater(t, len(segFiles(t, dir, segmentSuffix)), 3, "512-byte segments roll over")

	_, snap, logs := openTestStore(t, dir, smallSegments)
	require.Equal(t, uint64(5), snap.nextLedger)
	require.Equal(t, map[string]int{"persistent://public/default/p": 2}, snap.partitioned)
	require.Len(t, snap.topics, 4)
	a := findTopic(t, snap, topicA)
	require.Equal(t, uint64(1), a.ledger)
	require.Equal(t, uint64(0), a.first)
	require.Len(t, a.entries, n)
	for i, e := range a.entries {
		require.Equal(t, entryData(topicA, uint64(i)), e, "entry %d", i)
	}
	require.Equal(t, map[string]int64{"prod-0": 570, "prod-1": 580, "prod-2": 590}, a.lastSeq)
	require.Equal(t, map[string]cursorState{"sub": cs}, a.cursors)
	b := findTopic(t, snap, topicB)
	require.Len(t, b.entries, 5)
	require.Equal(t, map[string]int64{"": -1}, b.lastSeq)
	require.Equal(t, map[string]cursorState{"other": {AckedUpTo: 5}}, b.cursors)
	require.Empty(t, findTopic(t, snap, "persistent://public/default/p-partition-1").entries)
	require.NotContains(t, logs.String(), "level=WARN")
	require.NotContains(t, logs.String(), "level=ERROR")
}

func TestFileStoreGroupCommitOrder(t *testing.T) {
	fs, _, _ := openTestStore(t, t.TempDir(), defaultFileStoreConfig)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	require.NoError(t, fs.putTopic(topicB, 2, 3))

	// 64 appenders per topic, ids assigned in order as the broker does;
	// the done callbacks must come back in id order per topic.
	const appenders, each = 64, 20
	var (
		mu      sync.Mutex
		next    = map[string]uint64{}
		doneLog = map[string][]uint64{}
		wg      sync.WaitGroup
	)
	for g := range 2 * appenders {
		topic := []string{topicA, topicB}[g%2]
		wg.Go(func() {
			for range each {
				finished := make(chan error, 1)
				mu.Lock()
				id := next[topic]
				next[topic]++
				fs.appendEntry(topic, id, entryData(topic, id), "p", int64(id), func(err error) {
					mu.Lock()
					doneLog[topic] = append(doneLog[topic], id)
					mu.Unlock()
					finished <- err
				})
				mu.Unlock()
				if err := <-finished; err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, topic := range []string{topicA, topicB} {
		require.Len(t, doneLog[topic], appenders*each)
		require.True(t, slices.IsSorted(doneLog[topic]), "done order of %s", topic)
	}
	total := uint64(2 * appenders * each)
	t.Logf("%d appends, %d group commits, %d fsyncs", total, fs.batches.Load(), fs.fsyncs.Load())
	require.Less(t, fs.batches.Load(), total/4, "appends that wait together share a commit")
}

func TestFileStoreReordersRacingAppends(t *testing.T) {
	dir := t.TempDir()
	fs, _, _ := openTestStore(t, dir, defaultFileStoreConfig)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	// Two producers took ids 0..2 but reached appendEntry in reverse order.
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	for _, id := range []uint64{2, 1, 0} {
		wg.Add(1)
		fs.appendEntry(topicA, id, entryData(topicA, id), "p", int64(id), func(err error) {
			require.NoError(t, err)
			mu.Lock()
			order = append(order, id)
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	require.Equal(t, []uint64{0, 1, 2}, order)
	// An id that was already appended is refused, not written twice.
	require.ErrorContains(t, appendWait(fs, topicA, 1, []byte("x"), "p", 9), "appended after entry 2")
	require.NoError(t, fs.sync())

	_, snap, _ := openTestStore(t, dir, defaultFileStoreConfig)
	a := findTopic(t, snap, topicA)
	require.Equal(t, [][]byte{entryData(topicA, 0), entryData(topicA, 1), entryData(topicA, 2)}, a.entries)
}

func TestFileStoreTornTail(t *testing.T) {
	dir := t.TempDir()
	fs, _, _ := openTestStore(t, dir, defaultFileStoreConfig)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	for i := range uint64(10) {
		require.NoError(t, appendWait(fs, topicA, i, entryData(topicA, i), "p", int64(i)))
	}
	require.NoError(t, fs.sync())
	seg := segFiles(t, dir, segmentSuffix)[0]
	st, err := os.Stat(seg)
	require.NoError(t, err)

	// A crash in the middle of the last record.
	require.NoError(t, os.Truncate(seg, st.Size()-5))
	fs, snap, logs := openTestStore(t, dir, defaultFileStoreConfig)
	a := findTopic(t, snap, topicA)
	require.Len(t, a.entries, 9)
	require.Equal(t, map[string]int64{"p": 8}, a.lastSeq)
	require.Contains(t, logs.String(), "level=WARN msg=\"truncating a torn tail\"")
	require.NotContains(t, logs.String(), "level=ERROR")
	require.Empty(t, segFiles(t, dir, corruptSuffix))
	st2, err := os.Stat(seg)
	require.NoError(t, err)
	require.Less(t, st2.Size(), st.Size()-5, "the torn record is cut off")

	// Appends go on right after the valid prefix.
	require.NoError(t, appendWait(fs, topicA, 9, []byte("again"), "p", 99))
	require.NoError(t, fs.sync())

	// A crash after a few bytes of a record header.
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{42, 0, 0})
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, snap, logs = openTestStore(t, dir, defaultFileStoreConfig)
	a = findTopic(t, snap, topicA)
	require.Len(t, a.entries, 10)
	require.Equal(t, []byte("again"), a.entries[9])
	require.Contains(t, logs.String(), "torn tail")
}

func TestFileStoreCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	fs, _, _ := openTestStore(t, dir, smallSegments)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	require.NoError(t, fs.putTopic(topicB, 2, 3))
	const n = 40
	for i := range uint64(n) {
		require.NoError(t, appendWait(fs, topicA, i, entryData(topicA, i), "p", int64(i)))
		require.NoError(t, appendWait(fs, topicB, i, entryData(topicB, i), "p", int64(i)))
	}
	fs.putCursor(topicA, "s", cursorState{AckedUpTo: 30, Acked: []uint64{35}})
	require.NoError(t, fs.sync())
	segs := segFiles(t, filepath.Join(dir, "topics", "1"), segmentSuffix)
	require.Greater(t, len(segs), 2)

	// Flip one byte inside the third record of the first segment.
	first, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	off := segmentHeaderSize
	for range 2 {
		_, size, err := readRecord(first[off:])
		require.NoError(t, err)
		off += size
	}
	first[off+recordHeaderSize+3] ^= 0x40
	require.NoError(t, os.WriteFile(segs[0], first, 0o644))

	fs, snap, logs := openTestStore(t, dir, smallSegments)
	a := findTopic(t, snap, topicA)
	require.Len(t, a.entries, 2, "the entries before the damage survive")
	require.Equal(t, entryData(topicA, 1), a.entries[1])
	require.Len(t, findTopic(t, snap, topicB).entries, n, "other topics are untouched")
	require.Contains(t, logs.String(), "level=ERROR msg=\"corrupt segment")
	require.Contains(t, logs.String(), "checksum")
	require.Contains(t, logs.String(), "level=WARN msg=\"cursor points past the stored entries")
	require.Equal(t, cursorState{AckedUpTo: 2, Acked: []uint64{}}, a.cursors["s"])

	// Nothing was dropped silently: the damaged record and everything after
	// it are set aside.
	aside := segFiles(t, filepath.Join(dir, "topics", "1"), corruptSuffix)
	require.Len(t, aside, len(segs))
	tail, err := os.ReadFile(aside[0])
	require.NoError(t, err)
	require.Equal(t, first[off:], tail)

	// The topic goes on after its valid prefix, and reopens cleanly.
	require.NoError(t, appendWait(fs, topicA, 2, []byte("after"), "p", 100))
	require.NoError(t, fs.sync())
	_, snap, logs = openTestStore(t, dir, smallSegments)
	a = findTopic(t, snap, topicA)
	require.Len(t, a.entries, 3)
	require.Equal(t, []byte("after"), a.entries[2])
	require.NotContains(t, logs.String(), "level=ERROR")
}

func TestFileStoreCorruptLastRecordIsReported(t *testing.T) {
	dir := t.TempDir()
	fs, _, _ := openTestStore(t, dir, defaultFileStoreConfig)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	for i := range uint64(5) {
		require.NoError(t, appendWait(fs, topicA, i, []byte(fmt.Sprint("payload-", i)), "p", int64(i)))
	}
	require.NoError(t, fs.sync())
	seg := segFiles(t, dir, segmentSuffix)[0]
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	b[len(b)-1] ^= 1 // the last record: nothing valid follows it
	require.NoError(t, os.WriteFile(seg, b, 0o644))
	_, snap, logs := openTestStore(t, dir, defaultFileStoreConfig)
	require.Len(t, findTopic(t, snap, topicA).entries, 4)
	require.Contains(t, logs.String(), "level=WARN msg=\"truncating a torn tail\"")
	require.Contains(t, logs.String(), "checksum")
}

func TestFileStoreBadSegmentHeader(t *testing.T) {
	dir := t.TempDir()
	fs, _, _ := openTestStore(t, dir, smallSegments)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	for i := range uint64(30) {
		require.NoError(t, appendWait(fs, topicA, i, entryData(topicA, i), "p", int64(i)))
	}
	require.NoError(t, fs.sync())
	segs := segFiles(t, dir, segmentSuffix)
	require.Greater(t, len(segs), 2)
	b, err := os.ReadFile(segs[1])
	require.NoError(t, err)
	b[0] = 'X'
	require.NoError(t, os.WriteFile(segs[1], b, 0o644))

	_, snap, logs := openTestStore(t, dir, smallSegments)
	first, ok := parseSegmentName(filepath.Base(segs[1]))
	require.True(t, ok)
	require.Len(t, findTopic(t, snap, topicA).entries, int(first), "the first segment survives whole")
	require.Contains(t, logs.String(), "bad segment magic")
	require.Len(t, segFiles(t, dir, corruptSuffix), len(segs)-1)
	require.Len(t, segFiles(t, dir, segmentSuffix), 1)
}

func TestFileStoreDeleteTopic(t *testing.T) {
	dir := t.TempDir()
	fs, _, _ := openTestStore(t, dir, defaultFileStoreConfig)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	require.NoError(t, appendWait(fs, topicA, 0, []byte("old"), "p", 0))
	fs.putCursor(topicA, "s", cursorState{AckedUpTo: 1})
	require.NoError(t, fs.flushCursors())
	require.DirExists(t, filepath.Join(dir, "topics", "1"))

	require.NoError(t, fs.deleteTopic(topicA))
	require.NoDirExists(t, filepath.Join(dir, "topics", "1"))
	require.ErrorIs(t, appendWait(fs, topicA, 1, []byte("late"), "p", 1), ErrTopicNotFound)
	fs.putCursor(topicA, "s", cursorState{AckedUpTo: 1}) // ignored
	require.NoError(t, fs.flushCursors())
	require.NoDirExists(t, filepath.Join(dir, "topics", "1"))

	// Created again: a new ledger, a new directory, nothing of the old one.
	require.NoError(t, fs.putTopic(topicA, 2, 3))
	require.NoError(t, appendWait(fs, topicA, 0, []byte("new"), "p", 0))
	require.NoError(t, fs.sync())

	// The leftover of a delete interrupted by a crash is removed at open.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "topics", "7"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "topics", "7", segmentName(0)), []byte("junk"), 0o644))
	_, snap, logs := openTestStore(t, dir, defaultFileStoreConfig)
	require.Len(t, snap.topics, 1)
	a := findTopic(t, snap, topicA)
	require.Equal(t, uint64(2), a.ledger)
	require.Equal(t, [][]byte{[]byte("new")}, a.entries)
	require.Empty(t, a.cursors)
	require.NoDirExists(t, filepath.Join(dir, "topics", "7"))
	require.Contains(t, logs.String(), "removing the files of a deleted topic")
}

func TestFileStoreWriteErrorIsSticky(t *testing.T) {
	dir := t.TempDir()
	fs, _, logs := openTestStore(t, dir, defaultFileStoreConfig)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	require.NoError(t, fs.putTopic(topicB, 2, 3))
	require.NoError(t, appendWait(fs, topicA, 0, []byte("ok"), "p", 0))
	require.NoError(t, appendWait(fs, topicB, 0, []byte("ok"), "p", 0))

	// The disk goes away under topic a: its segment file stops working.
	tl := fs.topics[topicA]
	tl.mu.Lock()
	require.NoError(t, tl.file.Close())
	tl.mu.Unlock()
	require.Error(t, appendWait(fs, topicA, 1, []byte("lost"), "p", 1))
	require.Contains(t, logs.String(), "level=ERROR msg=\"cannot write a topic's segment")
	require.Error(t, appendWait(fs, topicA, 2, []byte("lost too"), "p", 2), "nothing more is written after an error")
	require.NoError(t, appendWait(fs, topicB, 1, []byte("fine"), "p", 1), "other topics go on")
	_ = fs.sync()

	_, snap, _ := openTestStore(t, dir, defaultFileStoreConfig)
	require.Equal(t, [][]byte{[]byte("ok")}, findTopic(t, snap, topicA).entries)
	require.Equal(t, [][]byte{[]byte("ok"), []byte("fine")}, findTopic(t, snap, topicB).entries)
}

func TestFileStoreNonPersistentTopicsAreNotWritten(t *testing.T) {
	dir := t.TempDir()
	fs, _, _ := openTestStore(t, dir, defaultFileStoreConfig)
	const np = "non-persistent://public/default/np"
	require.NoError(t, fs.putTopic(np, 1, 2))
	require.NoError(t, appendWait(fs, np, 0, []byte("x"), "p", 0))
	fs.putCursor(np, "s", cursorState{})
	require.NoError(t, fs.sync())
	require.NoDirExists(t, filepath.Join(dir, "topics", "1"))
	_, snap, _ := openTestStore(t, dir, defaultFileStoreConfig)
	require.Empty(t, snap.topics)
}

func TestFileStoreLockAndLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	fs, _, err := openFileStoreConfig(dir, nil, defaultFileStoreConfig)
	require.NoError(t, err)
	_, _, err = openFileStoreConfig(dir, nil, defaultFileStoreConfig)
	require.ErrorIs(t, err, ErrDataDirLocked)

	require.NoError(t, fs.putTopic(topicA, 1, 2))
	require.NoError(t, appendWait(fs, topicA, 0, []byte("a"), "p", 0))
	require.NoError(t, fs.sync())
	require.NoError(t, fs.sync(), "sync is idempotent")
	require.ErrorIs(t, appendWait(fs, topicA, 1, []byte("b"), "p", 1), errStoreClosed)
	fs.putCursor(topicA, "s", cursorState{AckedUpTo: 1}) // kept until reopen

	// Released: another store may open the directory, and then reopening
	// the first one fails.
	other, _, err := openFileStoreConfig(dir, nil, defaultFileStoreConfig)
	require.NoError(t, err)
	require.ErrorIs(t, fs.reopen(), ErrDataDirLocked)
	require.NoError(t, other.sync())

	require.NoError(t, fs.reopen())
	require.NoError(t, appendWait(fs, topicA, 1, []byte("b"), "p", 1))
	require.NoError(t, fs.sync())

	last, snap, err := openFileStoreConfig(dir, nil, defaultFileStoreConfig)
	require.NoError(t, err)
	a := findTopic(t, snap, topicA)
	require.Equal(t, [][]byte{[]byte("a"), []byte("b")}, a.entries)
	require.Equal(t, map[string]cursorState{"s": {AckedUpTo: 1}}, a.cursors)
	require.NoError(t, last.sync())
}

func TestFileStoreFlushesCursorsInTheBackground(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultFileStoreConfig
	cfg.cursorEvery = 20 * time.Millisecond
	fs, _, _ := openTestStore(t, dir, cfg)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	path := filepath.Join(dir, "topics", "1", cursorsName)
	read := func() string {
		b, _ := os.ReadFile(path)
		return string(b)
	}
	fs.putCursor(topicA, "s", cursorState{AckedUpTo: 3})
	require.Eventually(t, func() bool { return strings.Contains(read(), `"ackedUpTo":3`) }, 5*time.Second, 5*time.Millisecond)
	fs.putCursor(topicA, "s", cursorState{AckedUpTo: 4})
	require.Eventually(t, func() bool { return strings.Contains(read(), `"ackedUpTo":4`) }, 5*time.Second, 5*time.Millisecond)
	fs.deleteCursor(topicA, "s")
	require.Eventually(t, func() bool { return read() == "{}" }, 5*time.Second, 5*time.Millisecond)
}

func TestFileStoreBadMetadata(t *testing.T) {
	dir := t.TempDir()
	fs, _, _ := openTestStore(t, dir, defaultFileStoreConfig)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	require.NoError(t, appendWait(fs, topicA, 0, []byte("a"), "p", 0))
	require.NoError(t, fs.sync())

	meta := filepath.Join(dir, metaName)
	good, err := os.ReadFile(meta)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(meta, good[:len(good)/2], 0o644))
	_, _, err = openFileStoreConfig(dir, nil, defaultFileStoreConfig)
	require.ErrorIs(t, err, ErrCorruptDataDir)

	// Without meta.json the topic data must not be taken for leftovers.
	require.NoError(t, os.Remove(meta))
	_, _, err = openFileStoreConfig(dir, nil, defaultFileStoreConfig)
	require.ErrorIs(t, err, ErrCorruptDataDir)
	require.DirExists(t, filepath.Join(dir, "topics", "1"))
}

func TestFileStoreCorruptCursorsFile(t *testing.T) {
	dir := t.TempDir()
	fs, _, _ := openTestStore(t, dir, defaultFileStoreConfig)
	require.NoError(t, fs.putTopic(topicA, 1, 2))
	require.NoError(t, appendWait(fs, topicA, 0, []byte("a"), "p", 0))
	fs.putCursor(topicA, "s", cursorState{AckedUpTo: 1})
	require.NoError(t, fs.sync())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "topics", "1", cursorsName), []byte("{\"s\":"), 0o644))
	_, snap, logs := openTestStore(t, dir, defaultFileStoreConfig)
	a := findTopic(t, snap, topicA)
	require.Len(t, a.entries, 1)
	require.Empty(t, a.cursors)
	require.Contains(t, logs.String(), "corrupt cursors file set aside")
	require.FileExists(t, filepath.Join(dir, "topics", "1", cursorsName+corruptSuffix))
}

// FuzzFileStoreDecode feeds arbitrary bytes to the segment decoder: it must
// never panic, and what it accepts must re-encode to exactly the accepted
// prefix.
func FuzzFileStoreDecode(f *testing.F) {
	seg := appendSegmentHeader(nil, 3, 10)
	for i := range uint64(4) {
		seg = appendRecord(seg, 10+i, int64(i), "producer", entryData("t", i))
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(seg[:segmentHeaderSize+5])
	flipped := bytes.Clone(seg)
	flipped[segmentHeaderSize+20] ^= 1
	f.Add(flipped)
	f.Add([]byte{})
	f.Add(appendSegmentHeader(nil, 3, 10))
	f.Fuzz(func(t *testing.T, b []byte) {
		var recs []logRecord
		valid, next, err := scanSegment(b, 3, 10, func(r logRecord, _ int) { recs = append(recs, r) })
		if valid < 0 || valid > len(b) {
			t.Fatalf("valid prefix %d of %d bytes", valid, len(b))
		}
		if (err == nil && valid != len(b)) || (err != nil && valid == len(b) && len(b) >= segmentHeaderSize) {
			t.Fatalf("err %v with %d of %d bytes valid", err, valid, len(b))
		}
		if err != nil && !errors.Is(err, errCorrupt) && !errors.Is(err, errTruncated) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if next != 10+uint64(len(recs)) {
			t.Fatalf("next %d after %d records", next, len(recs))
		}
		if len(recs) > 0 || valid > 0 {
			again := appendSegmentHeader(nil, 3, 10)
			for _, r := range recs {
				again = appendRecord(again, r.id, r.lastSeq, string(r.producer), r.data)
			}
			if !bytes.Equal(again, b[:valid]) {
				t.Fatalf("re-encoding differs from the accepted prefix")
			}
		}
		_ = validRecordAfter(b, valid, next)
		_, _, _ = readRecord(b)
	})
}
